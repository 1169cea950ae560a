//! A task that works in rounds at a fixed period until asked to stop: the
//! shape of every background round a worker runs (releasing held retries,
//! moving approved ones on, counting actions). A round that fails marks the
//! task `degraded` with why, and the next round, within a second, tries
//! again; one that works marks it healthy.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use awfdrs_telemetry::TaskHealth;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How soon a round that failed is tried again, at the latest.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Runs `round` every `period` until `stop` (a failed one again within a
/// second); `what` says in the health
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
    // The first round goes at once.
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        match round().await {
            Ok(()) => {
                health.ok();
                wait = period;
            }
            Err(e) => {
                warn!(what, error = %e, "a round failed; trying again soon");
                health.degraded(format!("cannot {what}: {e}"));
                // A long period must not keep the task degraded (and the
                // process not ready) long after what failed is back.
                wait = period.min(AFTER_FAILURE);
            }
        }
    }
    info!(what, "rounds stopped");
}
