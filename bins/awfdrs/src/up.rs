//! Running workers: all of them in one process (`up`) or one (`worker`),
//! and preparing the database and the streams for them (`migrate`).

use awfdrs_config::Config;
use awfdrs_runtime::{Context, Harness};
use clap::ValueEnum;
use tracing::info;

/// `awfdrs up`'s arguments.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Listen address of the gateway (overrides AWFDRS_HTTP_ADDR).
    #[arg(long)]
    pub http: Option<String>,
}

/// `awfdrs worker`'s arguments.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[arg(value_enum)]
    pub name: Worker,
    /// Listen address of the gateway (gateway only).
    #[arg(long)]
    pub http: Option<String>,
}

/// A worker that runs on its own.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Worker {
    Gateway,
    Detector,
    Analyzer,
    Coordinator,
    Scheduler,
    Notifier,
}

impl Worker {
    /// The worker's name when it signs or verifies with secrets at rest
    /// (and so needs their key).
    fn signs(self) -> Option<&'static str> {
        match self {
            Self::Gateway => Some("the gateway"),
            Self::Scheduler => Some("the scheduler"),
            Self::Notifier => Some("the notifier"),
            Self::Detector | Self::Analyzer | Self::Coordinator => None,
        }
    }
}

/// Applies the migrations and declares the JetStream topology.
pub async fn migrate(config: Config) -> anyhow::Result<()> {
    awfdrs_telemetry::init_logging(config.telemetry.log_format);
    let ctx = Context::connect(config).await?;
    ctx.prepare().await?;
    eprintln!("migrations applied and streams declared");
    Ok(())
}

/// Migrates, declares the topology, and runs the gateway and every worker
/// in one harness until SIGTERM; then drains within the grace period and
/// returns. A worker that fails stops the others and makes this an error.
pub async fn up(config: Config) -> anyhow::Result<()> {
    awfdrs_runtime::require_secrets_key(&config, "awfdrs up")?;
    awfdrs_telemetry::init_logging(config.telemetry.log_format);
    let harness = Harness::boot(config).await?;
    let ctx = harness.ctx();
    ctx.prepare().await?;
    info!(
        http = %ctx.config.http.addr, namespace = %ctx.config.namespace,
        nats = %ctx.bus.server_version(), "awfdrs up"
    );
    awfdrs_gateway::start(&harness).await?;
    awfdrs_detector::start(&harness).await?;
    awfdrs_analyzer::start(&harness).await?;
    awfdrs_coordinator::start(&harness).await?;
    awfdrs_scheduler::start(&harness).await?;
    awfdrs_notifier::start(&harness).await?;
    harness.run().await
}

/// Runs one worker in its own harness; a worker without an HTTP server of
/// its own serves the operations endpoints on `telemetry.metrics_addr`.
pub async fn worker(config: Config, name: Worker) -> anyhow::Result<()> {
    if let Some(process) = name.signs() {
        awfdrs_runtime::require_secrets_key(&config, process)?;
    }
    awfdrs_telemetry::init_logging(config.telemetry.log_format);
    let harness = Harness::boot(config).await?;
    match name {
        Worker::Gateway => {
            awfdrs_gateway::start(&harness).await?;
        }
        Worker::Detector => {
            harness.serve_ops().await?;
            awfdrs_detector::start(&harness).await?;
        }
        Worker::Analyzer => {
            harness.serve_ops().await?;
            awfdrs_analyzer::start(&harness).await?;
        }
        Worker::Coordinator => {
            harness.serve_ops().await?;
            awfdrs_coordinator::start(&harness).await?;
        }
        Worker::Scheduler => {
            harness.serve_ops().await?;
            awfdrs_scheduler::start(&harness).await?;
        }
        Worker::Notifier => {
            harness.serve_ops().await?;
            awfdrs_notifier::start(&harness).await?;
        }
    }
    harness.run().await
}
