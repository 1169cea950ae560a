//! The audit trail of breaker transitions: a Postgres row and a metric for
//! each transition this process wrote to KV.

use std::sync::Arc;
use std::time::Duration;

use awfdrs_safety::breaker::Transition;
use awfdrs_store::{NewBreakerTransition, Store};
use awfdrs_telemetry::{BreakerTransitionLabels, Metrics};
use chrono::{DateTime, Utc};

use crate::Timestamp;

/// Inserts tried before a transition is given up on (logged and counted).
const RECORD_ATTEMPTS: u32 = 4;

/// Records transitions; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

/// One transition with who made it and the KV write it was made in.
#[derive(Debug)]
pub(crate) struct Made<'a> {
    pub vendor: &'a str,
    pub transition: &'a Transition,
    pub actor: &'a str,
    pub failure_rate: f64,
    pub revision: u64,
}

impl Recorder {
    /// Counts the transition and records it, retrying transient database
    /// errors a few times. The KV write has happened already and cannot be
    /// undone, so a record that still fails is logged and counted, not
    /// returned as an error.
    pub async fn record(&self, made: &Made<'_>) {
        let t = made.transition;
        self.metrics
            .breaker_transitions
            .get_or_create(&BreakerTransitionLabels {
                vendor: made.vendor.to_owned(),
                from: t.from.as_str(),
                to: t.to.as_str(),
            })
            .inc();
        tracing::info!(
            vendor = made.vendor,
            from = %t.from,
            to = %t.to,
            actor = made.actor,
            reason = %t.reason,
            revision = made.revision,
            "breaker transition"
        );
        let row = NewBreakerTransition {
            vendor: made.vendor.to_owned(),
            from_state: t.from,
            to_state: t.to,
            at: to_utc(t.at),
            actor: made.actor.to_owned(),
            reason: t.reason.clone(),
            failure_rate: Some(made.failure_rate),
            kv_revision: i64::try_from(made.revision).unwrap_or(i64::MAX),
        };
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=RECORD_ATTEMPTS {
            match self.store.record_breaker_transition(&row).await {
                Ok(_) => return,
                Err(e) if e.is_transient() && attempt < RECORD_ATTEMPTS => {
                    tracing::warn!(vendor = made.vendor, error = %e, attempt, "recording breaker transition failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    tracing::error!(
                        vendor = made.vendor,
                        from = %t.from,
                        to = %t.to,
                        error = %e,
                        "breaker transition not recorded"
                    );
                    self.metrics.breaker_transition_record_failures.inc();
                    return;
                }
            }
        }
    }
}

/// A safety timestamp as a database one.
pub(crate) fn to_utc(t: Timestamp) -> DateTime<Utc> {
    let ms = i64::try_from(t.as_unix_millis()).unwrap_or(i64::MAX);
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
