//! How every worker treats its database work: a transient failure (a
//! deadlock, a serialisation failure, a dropped connection) is tried again
//! a few times with jittered backoff, and what still fails becomes the
//! message's outcome: held while the database is down, redelivered when it
//! may pass, dead-lettered when it never will.

use std::future::Future;
use std::time::Duration;

use awfdrs_bus::Outcome;
use awfdrs_store::StoreError;
use backon::{ExponentialBuilder, Retryable};
use tracing::warn;

/// Runs `work` until it succeeds or fails other than transiently, at most
/// five times; `what` names it in the log.
///
/// # Errors
/// The last failure.
pub async fn retry_transient<T, F, Fut>(what: &str, work: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    work.retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(500))
            .with_max_times(4)
            .with_jitter(),
    )
    .when(StoreError::is_transient)
    .notify(|e, after| warn!(error = %e, ?after, "{what} failed; retrying"))
    .await
}

/// The outcome of a message whose database work failed with `e`: held
/// while the database is unavailable, retried while the failure may pass,
/// else dead-lettered, `refused` saying what the database refused.
#[must_use]
pub fn outcome_of(e: &StoreError, refused: &str) -> Outcome {
    if e.is_unavailable() {
        Outcome::Unavailable(format!("database: {e}"))
    } else if e.is_transient() {
        Outcome::Retry(format!("database: {e}"))
    } else {
        Outcome::Reject(format!("database refused {refused}: {e}"))
    }
}
