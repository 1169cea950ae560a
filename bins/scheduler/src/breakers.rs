//! A due retry is not fired into a vendor's breaker that does not let
//! retries through: one scheduled while the breaker was closed, due after it
//! opened, is deferred (due again when the breaker may half-open, and
//! looked at again then). Half-open, only the retries released into the
//! breaker's probe slots go (a slot is held by the retry's action id); the
//! others are deferred until it has closed. The answer comes from the process's watched view of
//! the breakers, with no round trip.

use std::time::Duration;

use awfdrs_guard::Admission;
use awfdrs_runtime::Context;
use awfdrs_store::DueRetry;
use chrono::{DateTime, Utc};

/// How long a retry waits when the breaker says nothing of when it may
/// change (forced open by an operator, or half-open).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// What to do with a due retry now.
pub(crate) enum AtFire {
    Fire,
    /// Not yet: due again at the time, for the reason.
    Defer(DateTime<Utc>, String),
}

/// Whether `retry` may be fired at `now`, by its vendor's breaker.
pub(crate) fn at_fire(ctx: &Context, retry: &DueRetry, now: DateTime<Utc>) -> AtFire {
    let Some(vendor) = &retry.vendor else {
        return AtFire::Fire;
    };
    let again = |until: Option<awfdrs_guard::Timestamp>| {
        until
            .and_then(|t| {
                DateTime::<Utc>::from_timestamp_millis(i64::try_from(t.as_unix_millis()).ok()?)
            })
            .filter(|t| *t > now)
            .unwrap_or(now + chrono::Duration::from_std(LOOK_AGAIN).unwrap_or_default())
    };
    let probe = || {
        ctx.breakers
            .probe_holders(vendor)
            .contains(&retry.id.to_string())
    };
    match ctx.breakers.check(vendor, awfdrs_guard::now()) {
        Admission::Allow => AtFire::Fire,
        // Half-open (with its slots free or taken): the probes go.
        Admission::Probe | Admission::Deny { .. } if probe() => AtFire::Fire,
        Admission::Deny { until } => AtFire::Defer(
            again(until),
            format!("deferred: the breaker of {vendor} does not let retries through"),
        ),
        Admission::Probe => AtFire::Defer(
            again(None),
            format!("deferred: the breaker of {vendor} is half-open"),
        ),
    }
}
