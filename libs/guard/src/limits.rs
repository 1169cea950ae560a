//! Hard retry limits counted in Postgres: retries per workflow run, per
//! incident, and per vendor per hour. A retry over one is not sent; the
//! coordinator escalates, naming the limit and the key that sets it.

use std::fmt;
use std::sync::Arc;

use awfdrs_safety::HardLimits;
use awfdrs_safety::limits::{HardLimit, LimitExceeded, RetryCounts};
use awfdrs_store::{NewRetryAttempt, RetryAttemptCounts, RetryScope, Store};
use awfdrs_telemetry::{HardLimitLabels, Metrics};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::GuardError;

/// Where a hard limit is configured, as an operator would look for it.
#[must_use]
pub fn config_key(limit: HardLimit) -> &'static str {
    match limit {
        HardLimit::PerRun => "vendor_config.yaml: hard_limits.max_retries_per_run",
        HardLimit::PerIncident => "vendor_config.yaml: hard_limits.max_retries_per_incident",
        HardLimit::PerVendorPerHour => {
            "vendor_config.yaml: hard_limits.max_retries_per_vendor_per_hour"
        }
    }
}

fn metric_name(limit: HardLimit) -> &'static str {
    match limit {
        HardLimit::PerRun => "max_retries_per_run",
        HardLimit::PerIncident => "max_retries_per_incident",
        HardLimit::PerVendorPerHour => "max_retries_per_vendor_per_hour",
    }
}

/// A hard limit one more retry would break: the reason of an escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitHit {
    /// The limit, its maximum and the count already made.
    #[serde(flatten)]
    pub exceeded: LimitExceeded,
    /// The configuration key that sets it.
    pub config_key: &'static str,
}

impl fmt::Display for LimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.exceeded, self.config_key)
    }
}

/// The hard limits' answer for one retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitVerdict {
    /// Within every limit (after a reservation: counted).
    Within {
        /// Retries already made in each scope, before this one.
        counts: RetryCounts,
        /// The attempt had been reserved before (a redelivery).
        duplicate: bool,
    },
    /// Over a limit: escalate instead of retrying.
    Exceeded(LimitHit),
}

impl LimitVerdict {
    /// Whether the retry may go ahead.
    #[must_use]
    pub fn is_within(&self) -> bool {
        matches!(self, Self::Within { .. })
    }
}

/// Checks and reserves retries against the hard limits. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HardLimiter {
    store: Store,
    metrics: Arc<Metrics>,
}

impl HardLimiter {
    /// A limiter counting in `store`.
    #[must_use]
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics }
    }

    /// Whether one more retry in `scope` at `now` stays within `limits`,
    /// without counting it (for a decision record or a dry run).
    ///
    /// # Errors
    /// When Postgres fails.
    pub async fn check(
        &self,
        limits: &HardLimits,
        scope: &RetryScope,
        now: DateTime<Utc>,
    ) -> Result<LimitVerdict, GuardError> {
        let counts = to_counts(self.store.retry_counts(scope, now).await?);
        Ok(self.verdict(limits, counts))
    }

    /// Counts `attempt` if it stays within `limits`, atomically: concurrent
    /// coordinators cannot both take the last retry. Reserving the same
    /// (tenant, action, attempt) again answers `Within` with `duplicate`.
    ///
    /// # Errors
    /// When Postgres fails.
    pub async fn reserve(
        &self,
        limits: &HardLimits,
        attempt: &NewRetryAttempt,
    ) -> Result<LimitVerdict, GuardError> {
        let r = self
            .store
            .reserve_retry_attempt(attempt, |c| limits.exceeded(&to_counts(*c)).is_none())
            .await?;
        if r.duplicate {
            return Ok(LimitVerdict::Within {
                counts: to_counts(r.counts),
                duplicate: true,
            });
        }
        Ok(self.verdict(limits, to_counts(r.counts)))
    }

    fn verdict(&self, limits: &HardLimits, counts: RetryCounts) -> LimitVerdict {
        match limits.exceeded(&counts) {
            None => LimitVerdict::Within {
                counts,
                duplicate: false,
            },
            Some(exceeded) => {
                self.metrics
                    .hard_limits_exceeded
                    .get_or_create(&HardLimitLabels {
                        limit: metric_name(exceeded.limit),
                    })
                    .inc();
                LimitVerdict::Exceeded(LimitHit {
                    exceeded,
                    config_key: config_key(exceeded.limit),
                })
            }
        }
    }
}

fn to_counts(c: RetryAttemptCounts) -> RetryCounts {
    let clamp = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
    RetryCounts {
        run: clamp(c.run),
        incident: clamp(c.incident),
        vendor_last_hour: clamp(c.vendor_last_hour),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_names_the_limit_and_its_config_key() {
        let limits = HardLimits {
            max_retries_per_incident: 3,
            ..HardLimits::default()
        };
        let counts = RetryCounts {
            run: 0,
            incident: 3,
            vendor_last_hour: 0,
        };
        let exceeded = limits.exceeded(&counts).expect("over the incident limit");
        let hit = LimitHit {
            exceeded,
            config_key: config_key(exceeded.limit),
        };
        assert_eq!(
            hit.to_string(),
            "3 retries already made, max_retries_per_incident is 3 \
             (vendor_config.yaml: hard_limits.max_retries_per_incident)"
        );
        let json = serde_json::to_value(hit).expect("serialises");
        assert_eq!(json["limit"], "per_incident");
        assert_eq!(
            json["config_key"],
            "vendor_config.yaml: hard_limits.max_retries_per_incident"
        );
    }

    #[test]
    fn counts_saturate_instead_of_wrapping() {
        let c = to_counts(RetryAttemptCounts {
            run: i64::MAX,
            incident: -1,
            vendor_last_hour: 7,
        });
        assert_eq!((c.run, c.incident, c.vendor_last_hour), (u32::MAX, 0, 7));
    }
}
