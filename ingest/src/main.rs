use std::path::PathBuf;

use clap::Parser;

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
    ingest::run(config, metrics, runtime::shutdown::Shutdown::on_signals()).await?;
    Ok(())
}
