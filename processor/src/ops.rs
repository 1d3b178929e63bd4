//! The processor's ops port: `/healthz` checks ClickHouse and the broker for real
//! and that every worker runs (503 while one is restarting, with its error),
//! `/metrics` renders Prometheus text.

use std::time::Duration;

use http::{Method, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;
use runtime::http::{json, metrics, Body, Problem};
use runtime::kafka::AckedProducer;

#[derive(Clone)]
pub struct OpsState {
    pub clickhouse: clickhouse::Client,
    pub producer: AckedProducer,
    pub metrics: PrometheusHandle,
    /// The pipeline and its side workers: health fails while any is not running.
    pub workers: runtime::workers::Workers,
}

pub async fn handle(
    state: OpsState,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<Body> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => metrics(&state.metrics),
        (&Method::GET, "/healthz") => health(&state).await,
        _ => Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "try /healthz or /metrics",
        )
        .into_response(),
    }
}

async fn health(state: &OpsState) -> http::Response<Body> {
    let timeout = Duration::from_secs(2);
    let clickhouse = runtime::clickhouse::ping(&state.clickhouse, timeout).await;
    let kafka = state
        .producer
        .check_broker(timeout)
        .await
        .map_err(|e| e.to_string());
    let workers = state.workers.health();
    let healthy = clickhouse.is_ok() && kafka.is_ok() && workers.healthy;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        &serde_json::json!({
            "status": if healthy { "ok" } else { "unavailable" },
            "clickhouse": clickhouse.err().unwrap_or_else(|| "ok".into()),
            "kafka": kafka.map(|_| "ok".to_owned()).unwrap_or_else(|e| e),
            "workers": workers.workers,
            "flapping": workers.flapping,
        }),
    )
}
