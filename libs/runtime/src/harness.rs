//! The worker harness: how every AWFDRS process runs its workers.
//!
//! A [`Harness`] owns the process's [`Context`] and its tasks. Every task is
//! named and tracked, in one of two groups:
//!
//! * **work** ([`Harness::spawn`]): what the process exists for, the
//!   consumer loops and the HTTP servers. They run until shutdown.
//! * **background** ([`Harness::spawn_background`]): what the work relies
//!   on, the rules watcher, the breakers' watch and clock, the outbox
//!   sweeper, the breaker feed. They stop only after the work has drained,
//!   so the last batch can still publish and merge.
//!
//! A task that fails, panics, or ends without being asked to is marked
//! failed in the process's [`Health`](awfdrs_telemetry::Health) (so `/ready`
//! says so) and stops the process: [`Harness::run`] then returns the error
//! and the binary exits non-zero for its supervisor to restart it. On
//! SIGTERM, [`Harness::run`] drains the work within the configured grace
//! period, then the background.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, error, info, info_span, warn};

use crate::{Context, Relay, shutdown_token};

/// How long the background may take to stop once the work has drained.
const BACKGROUND_GRACE: Duration = Duration::from_secs(5);

/// A process's workers and the tasks they run.
#[derive(Debug)]
pub struct Harness {
    ctx: Context,
    /// Cancelled on shutdown (a signal, the caller, or a failed task).
    shutdown: CancellationToken,
    /// Cancelled once the work has drained.
    after: CancellationToken,
    work: TaskTracker,
    background: TaskTracker,
    failure: Arc<Mutex<Option<anyhow::Error>>>,
    relay: OnceLock<Relay>,
}

impl Harness {
    /// Connects as configured and starts the process's shared background;
    /// SIGTERM or SIGINT asks it to stop. What every binary's `main` does.
    ///
    /// # Errors
    /// When PostgreSQL, NATS or the rules cannot be reached or read.
    pub async fn boot(config: awfdrs_config::Config) -> anyhow::Result<Self> {
        let ctx = Context::connect(config).await?;
        Self::start(ctx, shutdown_token())
    }

    /// A harness over `ctx`, stopped by `shutdown`, with the process's
    /// shared background running: the rules watcher (reload on change and
    /// SIGHUP) and the breakers' watch and clock, one each per process.
    ///
    /// # Errors
    /// When the rules directory cannot be watched.
    pub fn start(ctx: Context, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let harness = Self {
            ctx,
            shutdown,
            after: CancellationToken::new(),
            work: TaskTracker::new(),
            background: TaskTracker::new(),
            failure: Arc::default(),
            relay: OnceLock::new(),
        };
        let rules = harness.ctx.rules.clone();
        let watcher = awfdrs_rules::spawn_watcher(rules.clone(), harness.after.clone())
            .map_err(|e| anyhow::anyhow!("watching {}: {e}", rules.dir().display()))?;
        harness.spawn_background("rules.watcher", |_| async move {
            watcher.await.map_err(anyhow::Error::from)
        });
        let breakers = harness.ctx.breakers.clone();
        harness.spawn_background("breakers.watch", |stop| async move {
            breakers.spawn(stop).await.map_err(anyhow::Error::from)
        });
        Ok(harness)
    }

    /// The process's shared resources.
    pub fn ctx(&self) -> &Context {
        &self.ctx
    }

    /// The token that asks the work to stop.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs `task` as work named `name`, given the token that asks it to
    /// stop. It must run until then: ending earlier, with an error or
    /// without, fails the process.
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let stop = self.shutdown.clone();
        self.track(&self.work, name.into(), stop.clone(), task(stop));
    }

    /// Runs `task` in the background, named `name`, given the token that
    /// asks it to stop (once the work has drained). Ending earlier fails the
    /// process, as for work.
    pub fn spawn_background<F, Fut>(&self, name: impl Into<String>, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let stop = self.after.clone();
        self.track(&self.background, name.into(), stop.clone(), task(stop));
    }

    fn track<Fut>(&self, tracker: &TaskTracker, name: String, stop: CancellationToken, task: Fut)
    where
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let health = self.ctx.health.clone();
        let shutdown = self.shutdown.clone();
        let failure = self.failure.clone();
        health.ok(&name);
        let span = info_span!("task", task = %name);
        tracker.spawn(
            async move {
                let result = match crate::contain(task).await {
                    Ok(result) => result,
                    Err(panic) => Err(anyhow::anyhow!("panicked: {panic}")),
                };
                let error = match result {
                    Ok(()) if stop.is_cancelled() => {
                        health.remove(&name);
                        return;
                    }
                    Ok(()) => anyhow::anyhow!("stopped without being asked to"),
                    Err(e) => e,
                };
                let error = error.context(format!("task {name}"));
                error!(error = %format!("{error:#}"), "task failed; stopping the process");
                health.failed(&name, format!("{error:#}"));
                failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(error);
                shutdown.cancel();
            }
            .instrument(span),
        );
    }

    /// The process's outbox relay; the first call starts its sweeper.
    pub fn relay(&self) -> Relay {
        self.relay
            .get_or_init(|| {
                let relay = Relay::new(self.ctx.clone());
                let sweeper = relay.clone();
                self.spawn_background("outbox.sweeper", |stop| async move {
                    sweeper.sweep(stop).await;
                    Ok(())
                });
                relay
            })
            .clone()
    }

    /// Serves the operations endpoints (`/metrics`, `/api/v1/health`,
    /// `/api/v1/ready`) on `telemetry.metrics_addr`, as work: for a process
    /// whose workers have no HTTP server of their own.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn serve_ops(&self) -> anyhow::Result<()> {
        let listener = crate::bind_ops(self.ctx.config.telemetry.metrics_socket_addr()).await?;
        let ctx = self.ctx.clone();
        self.spawn("ops", |stop| crate::serve_ops(listener, ctx, stop));
        Ok(())
    }

    /// Runs until shutdown is asked for or a task fails, then lets the work
    /// finish within the grace period (`shutdown.grace_secs`), then stops
    /// the background.
    ///
    /// # Errors
    /// The first task's failure, or that the work did not drain in time.
    pub async fn run(self) -> anyhow::Result<()> {
        let grace = self.ctx.config.shutdown.grace();
        self.work.close();
        self.background.close();
        self.shutdown.cancelled().await;
        info!(tasks = self.work.len(), ?grace, "draining");
        let drained = tokio::time::timeout(grace, self.work.wait()).await.is_ok();
        if !drained {
            warn!(
                tasks = self.work.len(),
                "work did not finish within the grace period"
            );
        }
        self.after.cancel();
        if tokio::time::timeout(BACKGROUND_GRACE, self.background.wait())
            .await
            .is_err()
        {
            warn!(
                tasks = self.background.len(),
                "background did not stop in time"
            );
        }
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(e) = failure {
            return Err(e);
        }
        if !drained {
            anyhow::bail!("in-flight work did not finish within the {grace:?} grace period");
        }
        info!("stopped");
        Ok(())
    }
}
