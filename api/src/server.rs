//! Routes of the api, read as a table:
//!
//! | method | path               | what                                          |
//! |--------|--------------------|-----------------------------------------------|
//! | GET    | /api/calls         | calls, newest first, keyset pages             |
//! | GET    | /api/dead-letters  | refused records with reasons and payloads     |
//! | GET    | /api/events        | live calls (Server-Sent Events)               |
//! | POST   | /api/mappings/preview | a mapping applied to sample records, nothing written |
//! | GET    | /healthz           | ClickHouse answers                            |
//! | GET    | /metrics           | Prometheus text                               |

use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use runtime::http::{json, metrics, Body, Problem};
use runtime::shutdown::Shutdown;

use crate::config::ApiConfig;
use crate::events::EventHub;
use crate::recent::RecentPayloads;
use crate::{calls, dead_letters, preview};
use runtime::kafka::ConsumerError;
use runtime::registry::{IntegrationRegistry, RegistryError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Kafka(#[from] ConsumerError),
    #[error(transparent)]
    Bind(#[from] runtime::http::BindError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

#[derive(Clone)]
struct Api {
    clickhouse: clickhouse::Client,
    registry: IntegrationRegistry,
    recent: RecentPayloads,
    events: EventHub,
    metrics: PrometheusHandle,
    max_page: u32,
}

pub async fn run(
    config: ApiConfig,
    metrics: PrometheusHandle,
    shutdown: Shutdown,
) -> Result<(), ApiError> {
    let events = EventHub::start(
        &config.kafka,
        config.http.sse_buffer,
        Duration::from_secs(config.http.heartbeat_s),
        shutdown.clone(),
    )
    .await?;
    let registry = IntegrationRegistry::start(
        &config.kafka,
        shutdown.clone(),
        config.registry.initial_load(),
    )
    .await?;
    let recent =
        RecentPayloads::start(&config.kafka, config.http.recent_payloads, shutdown.clone()).await?;
    let state = Api {
        clickhouse: config.clickhouse.client(),
        registry,
        recent,
        events,
        metrics,
        max_page: config.http.max_page,
    };
    let listener = runtime::http::bind(config.http.listen).await?;
    tracing::info!(listen = %config.http.listen, "api listening");
    runtime::http::serve(
        listener,
        move |request| route(state.clone(), request),
        shutdown,
        Duration::from_secs(2),
    )
    .await;
    Ok(())
}

async fn route(state: Api, request: Request<Incoming>) -> Response<Body> {
    // Owned copies, so the preview arm can take the request (it reads the body).
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let query = query.as_deref();
    let result = match (&method, path.as_str()) {
        (&Method::GET, "/api/calls") => calls::list(&state.clickhouse, state.max_page, query).await,
        (&Method::GET, "/api/dead-letters") => {
            dead_letters::list(&state.clickhouse, state.max_page, query).await
        }
        (&Method::GET, "/api/events") => {
            let last_event_id = request
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            state
                .events
                .subscribe(query, last_event_id.as_deref())
                .await
        }
        (&Method::POST, "/api/mappings/preview") => {
            preview::preview(&state.registry, &state.recent, request).await
        }
        (&Method::GET, "/healthz") => Ok(health(&state).await),
        (&Method::GET, "/metrics") => Ok(metrics(&state.metrics)),
        (method, path) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {method} {path}"),
        )),
    };
    let response = result.unwrap_or_else(Problem::into_response);
    metrics::counter!("api_requests_total", "status" => response.status().as_u16().to_string())
        .increment(1);
    response
}

async fn health(state: &Api) -> Response<Body> {
    let clickhouse = runtime::clickhouse::ping(&state.clickhouse, Duration::from_secs(2)).await;
    let status = if clickhouse.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        &serde_json::json!({
            "status": if clickhouse.is_ok() { "ok" } else { "unavailable" },
            "clickhouse": clickhouse.err().unwrap_or_else(|| "ok".into()),
        }),
    )
}
