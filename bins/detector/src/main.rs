//! The detector worker as its own process.

use std::path::PathBuf;

use clap::Parser;

/// Persists workflow events and groups failures into incidents.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Configuration file (default: config/awfdrs.yaml when present).
    #[arg(long, env = "AWFDRS_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = awfdrs_config::Config::from_process_env(cli.config.as_deref(), &[])?;
    awfdrs_telemetry::init_logging(config.telemetry.log_format);
    let ctx = awfdrs_runtime::Context::connect(config).await?;
    let shutdown = awfdrs_runtime::shutdown_token();
    let ops = ctx.config.telemetry.metrics_socket_addr();
    tokio::spawn(awfdrs_runtime::serve_ops(
        ops,
        ctx.clone(),
        shutdown.clone(),
    ));
    awfdrs_detector::run(ctx, shutdown).await
}
