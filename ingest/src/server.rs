//! Routes of the ingest edge, read as a table:
//!
//! | method | path                                   | what                         |
//! |--------|----------------------------------------|------------------------------|
//! | POST   | /api/integrations/webhook/{clientId}   | partner records (webhook)    |
//! | POST   | /api/integrations/{clientId}/imports   | a CSV import (upload or URL) |
//! | GET    | /api/imports/{id}                      | an import's progress         |
//! | GET    | /api/polls                             | poll status, this instance's |
//! | POST   | /api/integrations/{clientId}/poll      | poll now                     |
//! | GET    | /api/openapi.json                      | the OpenAPI document         |
//! | GET    | /healthz                               | broker reachable, registry up |
//! | GET    | /metrics                               | Prometheus text              |

use std::time::Duration;

use http::header::ALLOW;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use runtime::http::{json, metrics, Body, Problem};
use runtime::kafka::{AckedProducer, ProduceError};
use runtime::registry::{IntegrationRegistry, RegistryError};
use runtime::shutdown::Shutdown;

use crate::config::IngestConfig;
use crate::imports::{self, ImportJobs, ImportState, Importer};
use crate::poll::Poller;
use crate::webhook::{self, WebhookState};

const WEBHOOK_PREFIX: &str = "/api/integrations/webhook/";

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Producer(#[from] ProduceError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Bind(#[from] runtime::http::BindError),
    #[error(transparent)]
    Poll(#[from] crate::poll::PollError),
}

#[derive(Clone)]
struct Ingest {
    webhook: WebhookState,
    imports: ImportState,
    poller: Option<Poller>,
    metrics: PrometheusHandle,
}

/// Loads the integrations, binds the listener and serves until `shutdown`.
pub async fn run(
    config: IngestConfig,
    metrics: PrometheusHandle,
    shutdown: Shutdown,
) -> Result<(), IngestError> {
    let registry = IntegrationRegistry::start(
        &config.kafka,
        shutdown.clone(),
        config.registry.initial_load(),
    )
    .await?;
    let producer = AckedProducer::new(&config.kafka)?;
    let key_rules = schemas::keys::KeyRulesCache::default();
    let imports = ImportState {
        importer: Importer {
            producer: producer.clone(),
            topics: config.kafka.topics(),
            jobs: ImportJobs::default(),
        },
        http: imports::http_client(Duration::from_secs(config.imports.fetch_timeout_s)),
        sheets_base_url: config.imports.sheets_base_url.clone(),
        token: (!config.imports.token.is_empty()).then(|| config.imports.token.clone()),
    };
    let poller = if config.poll.enabled {
        Some(
            Poller::start(
                &config.kafka,
                registry.clone(),
                producer.clone(),
                key_rules.clone(),
                imports::http_client(Duration::from_secs(600)),
                config.registry.initial_load(),
                shutdown.clone(),
            )
            .await?,
        )
    } else {
        None
    };
    let state = Ingest {
        imports,
        poller,
        webhook: WebhookState {
            registry,
            key_rules,
            rate_limits: Default::default(),
            deliveries: crate::webhook::deliveries(config.http.delivery_cache),
            producer,
            topics: config.kafka.topics(),
            body_limit: config.http.body_limit_bytes,
            max_records: config.http.max_records,
            retry_after_s: config.http.retry_after_s,
        },
        metrics,
    };
    let listener = runtime::http::bind(config.http.listen).await?;
    tracing::info!(listen = %config.http.listen, "ingest listening");
    runtime::http::serve(
        listener,
        move |request| route(state.clone(), request),
        shutdown,
        Duration::from_secs(5),
    )
    .await;
    Ok(())
}

async fn route(state: Ingest, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    if let Some(client) = path.strip_prefix(WEBHOOK_PREFIX) {
        if request.method() != Method::POST {
            let mut response = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "webhooks are delivered with POST",
            )
            .into_response();
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        return webhook::handle(&state.webhook, client, request).await;
    }
    if path == "/api/openapi.json" && request.method() == Method::GET {
        return runtime::http::document("application/json", schemas::openapi::OPENAPI_JSON);
    }
    if path == "/api/polls" {
        let statuses = state
            .poller
            .as_ref()
            .map(Poller::statuses)
            .unwrap_or_default();
        return json(StatusCode::OK, &serde_json::json!({ "polls": statuses }));
    }
    if let Some(client) = path
        .strip_prefix("/api/integrations/")
        .and_then(|rest| rest.strip_suffix("/poll"))
    {
        return poll_now(&state, client, request.method());
    }
    if let Some(id) = path.strip_prefix("/api/imports/") {
        return match imports::status(&state.imports, id) {
            Ok(response) => response,
            Err(problem) => problem.into_response(),
        };
    }
    if let Some(client) = path
        .strip_prefix("/api/integrations/")
        .and_then(|rest| rest.strip_suffix("/imports"))
    {
        if request.method() != Method::POST {
            return Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "imports are started with POST",
            )
            .into_response();
        }
        let started =
            imports::create_for(&state.webhook.registry, &state.imports, client, request).await;
        return match started {
            Ok(response) => response,
            Err(problem) => problem.into_response(),
        };
    }
    match (request.method(), path.as_str()) {
        (&Method::GET, "/healthz") => health(&state).await,
        (&Method::GET, "/metrics") => metrics(&state.metrics),
        _ => Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {} {path}", request.method()),
        )
        .into_response(),
    }
}

fn poll_now(state: &Ingest, client: &str, method: &Method) -> Response<Body> {
    if method != Method::POST {
        return Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "a poll is triggered with POST",
        )
        .into_response();
    }
    let integration = match crate::webhook::find_integration(&state.webhook.registry, client) {
        Ok(integration) => integration,
        Err(problem) => return problem.into_response(),
    };
    let Some(poller) = state.poller.as_ref().filter(|_| integration.poll.is_some()) else {
        return Problem::new(
            StatusCode::CONFLICT,
            "not_polled",
            format!("integration {client} has no poll configuration here"),
        )
        .into_response();
    };
    if poller.trigger(&integration.client_id) {
        json(
            StatusCode::ACCEPTED,
            &serde_json::json!({"client_id": client, "triggered": true}),
        )
    } else {
        Problem::new(StatusCode::CONFLICT, "not_owner", format!("another ingest instance polls {client}; ask it (or any instance again after a rebalance)"))
            .into_response()
    }
}

async fn health(state: &Ingest) -> Response<Body> {
    let kafka = state
        .webhook
        .producer
        .check_broker(Duration::from_secs(2))
        .await;
    // Which version of each integration this instance serves: a published change
    // is live here once its version shows.
    let integrations: serde_json::Map<String, serde_json::Value> = state
        .webhook
        .registry
        .all()
        .iter()
        .map(|i| (i.client_id.to_string(), i.version.into()))
        .collect();
    let status = if kafka.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        &serde_json::json!({
            "status": if kafka.is_ok() { "ok" } else { "unavailable" },
            "kafka": kafka.map(|_| "ok".to_owned()).unwrap_or_else(|e| e.to_string()),
            "integrations": integrations,
        }),
    )
}
