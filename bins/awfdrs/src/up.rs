//! Running workers: all of them in one process (`up`) or one (`worker`),
//! and preparing the database and the streams for them (`migrate`).

use awfdrs_config::Config;
use awfdrs_runtime::{Context, drain, serve_ops, shutdown_token};
use clap::ValueEnum;
use tokio::task::JoinSet;
use tracing::{error, info};

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
/// until SIGTERM; then drains within the grace period and returns.
pub async fn up(config: Config) -> anyhow::Result<()> {
    awfdrs_telemetry::init_logging(config.telemetry.log_format);
    let ctx = Context::connect(config).await?;
    ctx.prepare().await?;
    let shutdown = shutdown_token();
    let grace = ctx.config.shutdown.grace();
    info!(
        http = %ctx.config.http.addr, namespace = %ctx.config.namespace,
        nats = %ctx.bus.server_version(), "awfdrs up"
    );
    // Rules reload on file change and SIGHUP; an invalid reload keeps the
    // last good rules.
    let _watcher = awfdrs_rules::spawn_watcher(ctx.rules.clone(), shutdown.clone())
        .map_err(|e| anyhow::anyhow!("watching {}: {e}", ctx.rules.dir().display()))?;
    let mut tasks = JoinSet::new();
    tasks.spawn(awfdrs_gateway::run(ctx.clone(), shutdown.clone()));
    tasks.spawn(awfdrs_detector::run(ctx.clone(), shutdown.clone()));
    let work = async {
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = result {
                error!(error = %format!("{e:#}"), "worker failed; stopping the others");
                shutdown.cancel();
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    };
    drain(work, shutdown.clone(), grace).await?;
    info!("awfdrs stopped");
    Ok(())
}

/// Runs one worker with its operations endpoint.
pub async fn worker(config: Config, name: Worker) -> anyhow::Result<()> {
    awfdrs_telemetry::init_logging(config.telemetry.log_format);
    let ctx = Context::connect(config).await?;
    let shutdown = shutdown_token();
    let grace = ctx.config.shutdown.grace();
    let _watcher = awfdrs_rules::spawn_watcher(ctx.rules.clone(), shutdown.clone())
        .map_err(|e| anyhow::anyhow!("watching {}: {e}", ctx.rules.dir().display()))?;
    let work = async {
        match name {
            Worker::Gateway => awfdrs_gateway::run(ctx.clone(), shutdown.clone()).await,
            Worker::Detector => {
                let ops = ctx.config.telemetry.metrics_socket_addr();
                tokio::spawn(serve_ops(ops, ctx.clone(), shutdown.clone()));
                awfdrs_detector::run(ctx.clone(), shutdown.clone()).await
            }
        }
    };
    drain(work, shutdown.clone(), grace).await
}
