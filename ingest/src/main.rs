use std::path::PathBuf;

use clap::Parser;

// mimalloc: the per-record paths allocate many small short-lived values, and
// glibc's malloc cost a tenth of mapping's time (benches/README.md, issue 14).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The ingest edge: partner webhooks into Kafka.
#[derive(Parser)]
#[command(name = "ingest", version)]
struct Args {
    /// TOML config file; `INGEST_*` variables override it.
    #[arg(long, env = "INGEST_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::telemetry::init_logging();
    let args = Args::parse();
    let config: ingest::IngestConfig = runtime::config::load(args.config.as_deref(), "INGEST")?;
    let metrics = runtime::telemetry::init_metrics()?;
    let shutdown = runtime::shutdown::Shutdown::on_signals();
    runtime::shutdown::finish(ingest::run(config, metrics, shutdown.clone()), shutdown).await
}
