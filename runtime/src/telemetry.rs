//! Logging (tracing) and metrics (the `metrics` facade, rendered for Prometheus).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("installing the metrics recorder: {0}")]
    Metrics(String),
}

/// Logs go to stderr; `RUST_LOG` filters (default `info`), `LOG_FORMAT=json` switches
/// to one JSON object per line for log shippers.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests starting several servers) is harmless: keep the first.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Installs the process-wide recorder; `/metrics` renders the returned handle.
pub fn init_metrics() -> Result<PrometheusHandle, TelemetryError> {
    let builder = PrometheusBuilder::new().set_buckets(&[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]);
    let builder = builder.map_err(|e| TelemetryError::Metrics(e.to_string()))?;
    builder
        .install_recorder()
        .map_err(|e| TelemetryError::Metrics(e.to_string()))
}
