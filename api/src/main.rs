use std::path::PathBuf;

use clap::Parser;

/// Calls, dead letters and live events over HTTP.
#[derive(Parser)]
#[command(name = "api", version)]
struct Args {
    /// TOML config file; `API_*` variables override it.
    #[arg(long, env = "API_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::telemetry::init_logging();
    let args = Args::parse();
    let config: api::ApiConfig = runtime::config::load(args.config.as_deref(), "API")?;
    let metrics = runtime::telemetry::init_metrics()?;
    api::run(config, metrics, runtime::shutdown::Shutdown::on_signals()).await?;
    Ok(())
}
