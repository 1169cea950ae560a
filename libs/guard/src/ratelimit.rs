//! Retry rate limits shared by every worker: GCRA over a theoretical
//! arrival time kept in the KV bucket `<ns>_ratelimits`, one entry per
//! tenant and per vendor, advanced only by compare-and-set.

use std::sync::Arc;

use awfdrs_bus::{Bus, kv::Bucket};
use awfdrs_safety::RateLimit;
use awfdrs_safety::gcra::Decision;
use awfdrs_telemetry::{BucketLabels, Metrics, RateLimitLabels};

use crate::names::{HISTORY, RATELIMITS_BUCKET};
use crate::{GuardError, RateKey};

/// The shared retry rate limiters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RateLimits {
    bucket: Bucket,
    metrics: Arc<Metrics>,
}

impl RateLimits {
    /// Opens (creating if needed) the bucket.
    ///
    /// # Errors
    /// When the bucket cannot be opened.
    pub async fn open(bus: &Bus, metrics: Arc<Metrics>) -> Result<Self, GuardError> {
        let bucket = bus.bucket(RATELIMITS_BUCKET, HISTORY).await?;
        Ok(Self { bucket, metrics })
    }

    /// Asks `limit` for one retry under `key`. An allowed retry has been
    /// counted (its arrival time is stored) when this returns; a denied one
    /// changes nothing and says when to ask again. Every worker shares the
    /// count, so together they never exceed the rate plus the burst.
    ///
    /// # Errors
    /// When KV fails or stays contended, or the name is not a slug.
    pub async fn check(&self, key: &RateKey, limit: &RateLimit) -> Result<Decision, GuardError> {
        let kv_key = key.key()?;
        let mut decision = None;
        let cas = self
            .bucket
            .cas(&kv_key, None, |current| {
                let tat = current.and_then(parse_tat);
                let d = limit.check(tat, crate::now());
                decision = Some(d);
                match d {
                    Decision::Allow { new_tat } => Some(new_tat.to_string().into_bytes()),
                    Decision::Deny { .. } => None,
                }
            })
            .await;
        let cas = cas?;
        if cas.conflicts > 0 {
            self.metrics
                .kv_cas_conflicts
                .get_or_create(&BucketLabels {
                    bucket: RATELIMITS_BUCKET,
                })
                .inc_by(u64::from(cas.conflicts));
        }
        let decision = decision.expect("compare-and-set ran the decision");
        self.metrics
            .rate_limit_decisions
            .get_or_create(&RateLimitLabels {
                scope: key.scope(),
                outcome: if decision.is_allowed() {
                    "allow"
                } else {
                    "deny"
                },
            })
            .inc();
        Ok(decision)
    }
}

/// The stored arrival time; an unreadable value counts as none stored (the
/// limiter starts afresh, admitting at most one burst).
fn parse_tat(bytes: &[u8]) -> Option<u64> {
    let tat = std::str::from_utf8(bytes).ok()?.trim().parse().ok();
    if tat.is_none() {
        tracing::warn!("unreadable rate limit state in KV; starting afresh");
    }
    tat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_times_are_stored_as_decimal_nanoseconds() {
        assert_eq!(
            parse_tat(b"1800000000000000000"),
            Some(1_800_000_000_000_000_000)
        );
        assert_eq!(parse_tat(b"garbage"), None);
    }
}
