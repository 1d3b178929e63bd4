use std::path::PathBuf;

use clap::Parser;

/// Maps raw partner records into canonical calls in ClickHouse.
#[derive(Parser)]
#[command(name = "processor", version)]
struct Args {
    /// TOML config file; `PROCESSOR_*` variables override it.
    #[arg(long, env = "PROCESSOR_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::telemetry::init_logging();
    let args = Args::parse();
    let config: processor::ProcessorConfig =
        runtime::config::load(args.config.as_deref(), "PROCESSOR")?;
    let metrics = runtime::telemetry::init_metrics()?;
    processor::run(config, metrics, runtime::shutdown::Shutdown::on_signals()).await?;
    Ok(())
}
