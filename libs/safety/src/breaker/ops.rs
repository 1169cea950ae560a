//! The breaker's operations, each a pure function of the stored value.

use crate::duration::format_duration;
use crate::{BreakerSettings, Timestamp};

use super::{
    Admission, Breaker, BreakerState, Outcomes, Probe, ProbeGrant, ProbeResult, Transition, window,
};

/// Folds two transitions of one call into one: `from` of the first, the rest
/// of the second. `None` if the state ends where it began.
fn compose(first: Option<Transition>, second: Option<Transition>) -> Option<Transition> {
    match (first, second) {
        (Some(a), Some(b)) => (a.from != b.to).then(|| Transition {
            from: a.from,
            reason: format!("{}; then {}", a.reason, b.reason),
            ..b
        }),
        (a, b) => b.or(a),
    }
}

/// The value as of `now`: half-open once `open_duration` has passed, reopened
/// if a probe missed its deadline. Any reader may call it; every other
/// function applies it first.
#[must_use]
pub fn tick(
    breaker: &Breaker,
    settings: &BreakerSettings,
    now: Timestamp,
) -> (Breaker, Option<Transition>) {
    let mut b = breaker.clone();
    let t = b.advance(settings, now);
    (b, t)
}

/// Merges aggregated call outcomes into the window at `now`, and opens a
/// closed breaker when the window passes every opening condition.
#[must_use]
pub fn record(
    breaker: &Breaker,
    settings: &BreakerSettings,
    now: Timestamp,
    outcomes: &Outcomes,
) -> (Breaker, Option<Transition>) {
    let mut b = breaker.clone();
    let ticked = b.advance(settings, now);
    window::merge(&mut b.buckets, settings, now, outcomes);
    b.updated_at = now;
    let opened = if b.state == BreakerState::Closed {
        opening_reason(&b, settings, now).map(|reason| b.open(settings, now, reason))
    } else {
        None
    };
    (b, compose(ticked, opened))
}

/// Why the window at `now` opens the breaker, or `None` if it does not.
fn opening_reason(b: &Breaker, settings: &BreakerSettings, now: Timestamp) -> Option<String> {
    let stats = b.window_stats(now, settings);
    let rate = stats.failure_rate();
    let opens = stats.calls > 0
        && stats.calls >= u64::from(settings.minimum_calls)
        && rate >= settings.failure_rate_threshold
        && stats.distinct_sources >= settings.min_distinct_sources as usize;
    opens.then(|| {
        format!(
            "failure rate {rate:.2} >= {:.2} over {} with {} calls from {} sources",
            settings.failure_rate_threshold,
            format_duration(settings.window),
            stats.calls,
            stats.distinct_sources
        )
    })
}

/// Takes a probe slot for `holder` if the breaker is half-open and a slot is
/// free. Asking again with the same holder returns the same grant, so a
/// redelivered message does not take two slots.
#[must_use]
pub fn try_acquire_probe(
    breaker: &Breaker,
    settings: &BreakerSettings,
    now: Timestamp,
    holder: &str,
) -> (Breaker, Option<ProbeGrant>, Option<Transition>) {
    let mut b = breaker.clone();
    let ticked = b.advance(settings, now);
    if b.state != BreakerState::HalfOpen {
        return (b, None, ticked);
    }
    if let Some(p) = b.probes.iter().find(|p| p.holder == holder) {
        let grant = ProbeGrant {
            holder: p.holder.clone(),
            expires_at: p.expires_at,
        };
        return (b, Some(grant), ticked);
    }
    if b.probes.len() >= settings.half_open_probes as usize {
        return (b, None, ticked);
    }
    let expires_at = now.saturating_add(settings.probe_timeout);
    b.probes.push(Probe {
        holder: holder.to_owned(),
        granted_at: now,
        expires_at,
    });
    b.updated_at = now;
    let grant = ProbeGrant {
        holder: holder.to_owned(),
        expires_at,
    };
    (b, Some(grant), ticked)
}

/// Reports how `holder`'s probe went. A failure reopens the breaker;
/// `successes_to_close` successes close it. Reports from holders without a
/// slot (late, already expired, or from an earlier half-open period) are
/// ignored.
#[must_use]
pub fn report_probe(
    breaker: &Breaker,
    settings: &BreakerSettings,
    now: Timestamp,
    holder: &str,
    result: ProbeResult,
) -> (Breaker, Option<Transition>) {
    let mut b = breaker.clone();
    let ticked = b.advance(settings, now);
    if b.state != BreakerState::HalfOpen {
        return (b, ticked);
    }
    let Some(idx) = b.probes.iter().position(|p| p.holder == holder) else {
        return (b, ticked);
    };
    b.probes.remove(idx);
    b.updated_at = now;
    let changed = match result {
        ProbeResult::Failure => Some(b.open(settings, now, format!("probe by {holder} failed"))),
        ProbeResult::Success => {
            b.probe_successes += 1;
            (b.probe_successes >= settings.successes_to_close).then(|| {
                let reason = format!("{} probes succeeded", b.probe_successes);
                b.close(now, reason)
            })
        }
    };
    (b, compose(ticked, changed))
}

/// Operator action: open the breaker and keep it open, whatever the window
/// or the clock says, until [`reset`].
#[must_use]
pub fn force_open(
    breaker: &Breaker,
    now: Timestamp,
    reason: &str,
) -> (Breaker, Option<Transition>) {
    let mut b = breaker.clone();
    let was = b.state;
    if was != BreakerState::Open {
        b.opened_at = Some(now);
    }
    b.open_until = None;
    b.half_opened_at = None;
    b.forced_reason = Some(reason.to_owned());
    b.probes.clear();
    b.probe_successes = 0;
    let t = b.transition(BreakerState::Open, now, format!("forced open: {reason}"));
    (b, (was != BreakerState::Open).then_some(t))
}

/// Operator action: close the breaker and clear its window.
#[must_use]
pub fn reset(breaker: &Breaker, now: Timestamp) -> (Breaker, Option<Transition>) {
    let mut b = breaker.clone();
    let was = b.state;
    let t = b.close(now, "reset by operator".to_owned());
    (b, (was != BreakerState::Closed).then_some(t))
}

/// What a caller may do at `now`, without changing the value (it reads the
/// ticked view).
#[must_use]
pub fn check(breaker: &Breaker, settings: &BreakerSettings, now: Timestamp) -> Admission {
    let (b, _) = tick(breaker, settings, now);
    match b.state {
        BreakerState::Closed => Admission::Allow,
        BreakerState::Open => Admission::Deny {
            until: b.open_until,
        },
        BreakerState::HalfOpen if b.probes.len() < settings.half_open_probes as usize => {
            Admission::Probe
        }
        BreakerState::HalfOpen => Admission::Deny {
            until: b.probes.iter().map(|p| p.expires_at).min(),
        },
    }
}
