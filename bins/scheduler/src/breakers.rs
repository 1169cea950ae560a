//! A due retry is not fired into a vendor's breaker that does not let
//! retries through: one scheduled while the breaker was closed, due after it
//! opened, is deferred (due again when the breaker may half-open, and
//! looked at again then). Half-open, only the retries released into the
//! breaker's probe slots go (a slot is held by the retry's action id); the
//! others are deferred until it has closed. A retry that was deferred takes
//! a token of the vendor's rate limit when it goes at last, so the retries
//! an outage deferred are paced as the vendor recovers (it took one when it
//! was scheduled, but that was spent before the outage). The breaker's
//! answer comes from the process's watched view, with no round trip.

use std::time::Duration;

use awfdrs_guard::{Admission, Decision, GuardError, RateKey};
use awfdrs_runtime::Context;
use awfdrs_store::DueRetry;
use chrono::{DateTime, Utc};

/// How long a retry waits when the breaker says nothing of when it may
/// change (forced open by an operator, or half-open).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// What to do with a due retry now.
pub(crate) enum AtFire {
    Fire,
    /// Not yet: due again at the time, for the reason; `breaker` when its
    /// vendor's breaker said so (not its rate limit).
    Defer {
        until: DateTime<Utc>,
        why: String,
        breaker: bool,
    },
}

/// Whether `retry` may be fired at `now`, by its vendor's breaker (and, once
/// deferred, its rate limit).
///
/// # Errors
/// When the rate limit cannot be asked.
pub(crate) async fn at_fire(
    ctx: &Context,
    retry: &DueRetry,
    now: DateTime<Utc>,
) -> Result<AtFire, GuardError> {
    let Some(vendor) = &retry.vendor else {
        return Ok(AtFire::Fire);
    };
    let later = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
    let again = |until: Option<awfdrs_guard::Timestamp>| {
        until
            .and_then(|t| {
                DateTime::<Utc>::from_timestamp_millis(i64::try_from(t.as_unix_millis()).ok()?)
            })
            .filter(|t| *t > now)
            .unwrap_or_else(|| later(LOOK_AGAIN))
    };
    let probe = || {
        ctx.breakers
            .probe_holders(vendor)
            .contains(&retry.id.to_string())
    };
    let breaker = |until, why: String| AtFire::Defer {
        until,
        why,
        breaker: true,
    };
    Ok(match ctx.breakers.check(vendor, awfdrs_guard::now()) {
        // Half-open (with its slots free or taken): the probes go.
        Admission::Probe | Admission::Deny { .. } if probe() => AtFire::Fire,
        Admission::Deny { until } => breaker(
            again(until),
            format!("deferred: the breaker of {vendor} does not let retries through"),
        ),
        Admission::Probe => breaker(
            again(None),
            format!("deferred: the breaker of {vendor} is half-open"),
        ),
        Admission::Allow if retry.deferrals == 0 => AtFire::Fire,
        Admission::Allow => {
            let limit = ctx.rules.current().vendor(vendor).rate_limit;
            let key = RateKey::Vendor(vendor.clone());
            match ctx.rate_limits.check(&key, &limit).await? {
                Decision::Allow { .. } => AtFire::Fire,
                Decision::Deny { retry_after } => AtFire::Defer {
                    until: later(retry_after.min(Duration::from_secs(3600))),
                    why: format!(
                        "deferred: paced by the {key} rate limit after its breaker closed"
                    ),
                    breaker: false,
                },
            }
        }
    })
}
