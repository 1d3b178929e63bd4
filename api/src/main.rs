use std::path::PathBuf;

use clap::Parser;

// mimalloc: the per-record paths allocate many small short-lived values, and
// glibc's malloc cost a tenth of mapping's time (benches/README.md, issue 14).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let shutdown = runtime::shutdown::Shutdown::on_signals();
    runtime::shutdown::finish(api::run(config, metrics, shutdown.clone()), shutdown).await
}
