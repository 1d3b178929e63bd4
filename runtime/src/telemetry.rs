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
    let handle = builder
        .install_recorder()
        .map_err(|e| TelemetryError::Metrics(e.to_string()))?;
    start_upkeep(handle.clone(), UPKEEP_EVERY);
    Ok(handle)
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The exporter keeps every histogram sample until it is folded into the buckets,
/// which happens on a render (a scrape of `/metrics`) or an upkeep. `install_recorder`
/// runs no upkeep, so a process nobody scraped held every sample: ingest grew by about
/// 35 bytes per request, without bound (benches/README.md, the soak). A thread folds
/// them every `every`.
pub fn start_upkeep(handle: PrometheusHandle, every: std::time::Duration) {
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            handle.run_upkeep();
        });
    if let Err(error) = started {
        tracing::error!(%error, "could not start the metrics upkeep thread: histogram samples will pile up until /metrics is scraped");
    }
}
