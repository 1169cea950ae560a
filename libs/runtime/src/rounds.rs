//! A task that works in rounds at a fixed period until asked to stop: the
//! shape of every background round a worker runs (releasing held retries,
//! moving approved ones on, counting actions). A round that fails marks the
//! task `degraded` with why, and the next round tries again; one that works
//! marks it healthy.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use awfdrs_telemetry::TaskHealth;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Runs `round` every `period` until `stop`; `what` says in the health
/// report what failed ("cannot <what>: <error>") and in the log what
/// stopped.
pub async fn every<F, Fut, E>(
    period: Duration,
    what: &str,
    health: TaskHealth,
    stop: CancellationToken,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        match round().await {
            Ok(()) => health.ok(),
            Err(e) => {
                warn!(what, error = %e, "a round failed; trying again next round");
                health.degraded(format!("cannot {what}: {e}"));
            }
        }
    }
    info!(what, "rounds stopped");
}
