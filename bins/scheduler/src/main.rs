//! The scheduler worker as its own process.

use std::path::PathBuf;

use clap::Parser;

/// Fires due retries, once each.
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
    awfdrs_runtime::require_secrets_key(&config, "the scheduler")?;
    awfdrs_telemetry::init_logging(config.telemetry.log_format);
    let harness = awfdrs_runtime::Harness::boot(config).await?;
    harness.serve_ops().await?;
    awfdrs_scheduler::start(&harness).await?;
    harness.run().await
}
