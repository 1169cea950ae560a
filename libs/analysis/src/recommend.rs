//! The recommendation, in a fixed order of precedence: escalate what is
//! critical; hold while the vendor's breaker is open; retry by the error's
//! policy while it allows another try; escalate what cannot be retried
//! (no policy, a permanent error, a limit reached); do nothing about
//! low-severity noise that no cause explains.

use std::time::Duration;

use awfdrs_domain::decision::{
    ActionKind, CauseKind, Classification, Recommendation, RootCause, Severity, round2,
};
use awfdrs_safety::retry::{delay, jitter_seed};

use crate::input::AnalysisInput;
use crate::names;

/// Breaker state in which nothing is sent to the vendor.
const OPEN: &str = "OPEN";

/// What to do about `input`, classified as `class`, with root cause `cause`.
#[must_use]
pub fn recommend(
    input: &AnalysisInput,
    class: &Classification,
    cause: &RootCause,
) -> Recommendation {
    let policy_name = input.policy.as_ref().map(|(name, _)| name.clone());
    if class.severity == Severity::Critical {
        return escalate("severity critical: a person must look now", 0.95);
    }
    if class.retryable && input.policy.is_some() && breaker_open(input) {
        let vendor = input
            .incident
            .inputs
            .vendor
            .as_deref()
            .unwrap_or("the vendor");
        return Recommendation {
            action: ActionKind::Hold,
            reason: format!("{vendor}'s breaker is OPEN: retries wait until it half-opens"),
            policy: policy_name,
            next_delay_ms: None,
            confidence: 0.9,
        };
    }
    if class.retryable {
        return retry_or_escalate(input, cause);
    }
    if class.severity == Severity::Low && cause.hypothesis.kind == CauseKind::Unknown {
        return Recommendation {
            action: ActionKind::None,
            reason: "low severity, not retryable and no cause found: noise".to_owned(),
            policy: None,
            next_delay_ms: None,
            confidence: 0.6,
        };
    }
    escalate(
        &format!(
            "not retryable ({}): the same request fails the same way every time",
            names::category(class.category)
        ),
        0.85,
    )
}

/// Whether the vendor's breaker is open.
fn breaker_open(input: &AnalysisInput) -> bool {
    input
        .vendor
        .as_ref()
        .and_then(|v| v.breaker.as_ref())
        .is_some_and(|b| b.state == OPEN)
}

/// Retry by the policy, or escalate when there is none or it allows no
/// further try.
fn retry_or_escalate(input: &AnalysisInput, cause: &RootCause) -> Recommendation {
    let Some((name, policy)) = &input.policy else {
        return escalate("retryable, but the error code has no retry policy", 0.8);
    };
    let elapsed = (input.at - input.incident.first_seen)
        .to_std()
        .unwrap_or(Duration::ZERO);
    let seed = jitter_seed(&input.incident.id.to_string(), 1);
    let Some(next) = delay(policy, 1, elapsed, seed) else {
        return Recommendation {
            policy: Some(name.clone()),
            ..escalate(
                &format!("retry policy {name} allows no further try: limit reached"),
                0.9,
            )
        };
    };
    let asked = Duration::from_secs(input.failures.retry_after_secs.unwrap_or(0));
    let wait = next.max(asked).min(policy.max_delay);
    let reason = if asked > next {
        format!(
            "retry by policy {name}, after the vendor's Retry-After of {}s",
            asked.as_secs()
        )
    } else {
        format!("retry by policy {name}")
    };
    Recommendation {
        action: ActionKind::Retry,
        reason,
        policy: Some(name.clone()),
        next_delay_ms: Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        confidence: round2(0.55 + 0.35 * cause.hypothesis.confidence),
    }
}

/// Escalate, because `why`.
fn escalate(why: &str, confidence: f64) -> Recommendation {
    Recommendation {
        action: ActionKind::Escalate,
        reason: why.to_owned(),
        policy: None,
        next_delay_ms: None,
        confidence,
    }
}
