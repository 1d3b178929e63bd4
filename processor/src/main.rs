use std::path::PathBuf;

use clap::Parser;

// mimalloc: the per-record paths allocate many small short-lived values, and
// glibc's malloc cost a tenth of mapping's time (benches/README.md, issue 14).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let shutdown = runtime::shutdown::Shutdown::on_signals();
    runtime::shutdown::finish(processor::run(config, metrics, shutdown.clone()), shutdown).await
}
