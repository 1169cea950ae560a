//! The gateway as its own process.

use std::path::PathBuf;

use clap::Parser;

/// Accepts workflow events over HTTP and serves the operations API.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Configuration file (default: config/awfdrs.yaml when present).
    #[arg(long, env = "AWFDRS_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address (overrides AWFDRS_HTTP_ADDR and the file).
    #[arg(long)]
    http: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let overrides: Vec<(&str, String)> = cli.http.into_iter().map(|a| ("http.addr", a)).collect();
    let config = awfdrs_config::Config::from_process_env(cli.config.as_deref(), &overrides)?;
    awfdrs_runtime::require_secrets_key(&config, "the gateway")?;
    awfdrs_telemetry::init_logging(config.telemetry.log_format);
    let harness = awfdrs_runtime::Harness::boot(config).await?;
    awfdrs_gateway::start(&harness).await?;
    harness.run().await
}
