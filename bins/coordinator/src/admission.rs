//! The admission step before a retry, in its fixed order: the retry
//! policy, the effective mode (the stricter of the tenant's and the error
//! code's) and the pause, then the safety checks (the vendor's breaker, the
//! hard limits, the rate limits) that a retry an operator approved, or one
//! a pause held, passes later through the same function.

use std::time::Duration;

use awfdrs_domain::action::StoppedBy;
use awfdrs_domain::decision::{DecisionV1, Severity};
use awfdrs_guard::{Admission, Decision, LimitVerdict, RateKey};
use awfdrs_rules::Mode;
use awfdrs_runtime::Context;
use awfdrs_store::{NewRetryAttempt, StoreError, WaitingFor};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What the admission step allows a retry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Admitted {
    /// Go ahead at `due`.
    Retry { due: DateTime<Utc>, why: String },
    /// Wait for an operator (`for_what`): an approval, or the end of a
    /// pause; it goes no earlier than `due`.
    Wait {
        due: DateTime<Utc>,
        why: String,
        for_what: WaitingFor,
    },
    /// Recorded and never sent: the effective mode is `shadow`.
    Shadow { due: DateTime<Utc>, why: String },
    /// Hold until the vendor's breaker lets retries through again; no
    /// attempt is spent.
    Hold(String),
    /// Do not retry: tell people.
    Escalate(String, Option<StoppedBy>),
}

/// Why admission could not be asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdmissionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Guard(#[from] awfdrs_guard::GuardError),
}

/// The mode a retry is remediated in: the stricter of the tenant's and its
/// error code's, where `approve` below the approval threshold (`severity`
/// under `threshold`) goes ahead as `auto`.
pub(crate) fn effective_mode(
    tenant: Mode,
    code: Option<Mode>,
    severity: Severity,
    threshold: Severity,
) -> Mode {
    let mode = code.map_or(tenant, |c| tenant.stricter(c));
    if mode == Mode::Approve && severity < threshold {
        Mode::Auto
    } else {
        mode
    }
}

/// One retry to admit: `attempt` of the decision's incident, as action
/// `action_id`, at `now`, `first_seen` being the incident's first failure;
/// `mode` is its effective mode and `paused` whether its tenant's retries
/// are paused.
pub(crate) struct Candidate<'a> {
    pub decision: &'a DecisionV1,
    pub mode: Mode,
    pub paused: bool,
    pub action_id: Uuid,
    pub attempt: u32,
    pub first_seen: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// A retry past its policy and its mode, for the safety checks: `attempt`
/// of `incident_id` as action `action_id`, due at `due` for `why`.
pub(crate) struct Cleared<'a> {
    pub tenant_id: Uuid,
    /// The tenant's slug.
    pub tenant: &'a str,
    pub incident_id: Uuid,
    pub vendor: Option<&'a str>,
    pub action_id: Uuid,
    pub attempt: i32,
    pub due: DateTime<Utc>,
    pub why: String,
    pub now: DateTime<Utc>,
}

/// Asks every check in order; the first that stops the retry decides.
pub(crate) async fn admit(ctx: &Context, c: &Candidate<'_>) -> Result<Admitted, AdmissionError> {
    let d = c.decision;
    let rules = ctx.rules.current();
    let code = &d.signature_inputs.error_code;
    // The delay first: without a policy, or past its maximum, nothing else matters.
    let Some((policy_name, policy)) = rules.retry_policy_for(code) else {
        return Ok(Admitted::Escalate(
            format!("no retry policy for {code}"),
            Some(StoppedBy {
                limit: "no retry policy".to_owned(),
                config_key: format!("codes.{code}.retry_policy"),
            }),
        ));
    };
    let elapsed = (c.now - c.first_seen).to_std().unwrap_or_default();
    let seed = u64::from_le_bytes(c.action_id.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    let Some(delay) = awfdrs_safety::retry::delay(policy, c.attempt, elapsed, seed) else {
        let (limit, key) = if c.attempt > policy.max_attempts {
            (
                format!("{} attempts made", policy.max_attempts),
                "max_attempts",
            )
        } else {
            (
                "the time allowed for retries has passed".to_owned(),
                "max_elapsed",
            )
        };
        return Ok(Admitted::Escalate(
            format!("retry policy {policy_name}: {limit}"),
            Some(StoppedBy {
                limit,
                config_key: format!("retry_policies.{policy_name}.{key}"),
            }),
        ));
    };
    // A Retry-After the failures carried (the recommendation's delay holds
    // it for the first attempt): the larger wins, capped by the policy.
    let floor = if c.attempt == 1 {
        d.recommended_action
            .next_delay_ms
            .map_or(Duration::ZERO, Duration::from_millis)
    } else {
        Duration::ZERO
    };
    let delay = delay.max(floor).min(policy.max_delay);
    let due = c.now + chrono::Duration::from_std(delay).unwrap_or_default();
    let why = format!("attempt {} by policy {policy_name}", c.attempt);

    if c.mode == Mode::Shadow {
        return Ok(Admitted::Shadow {
            due,
            why: format!("shadow mode: would retry ({why})"),
        });
    }
    if c.mode == Mode::Approve {
        let also = if c.paused {
            ", and for the pause to end"
        } else {
            ""
        };
        return Ok(Admitted::Wait {
            due,
            why: format!("waiting for an operator's approval{also} ({why})"),
            for_what: WaitingFor::Approval,
        });
    }
    if c.paused {
        return Ok(Admitted::Wait {
            due,
            why: format!("automatic retries are paused for this tenant ({why})"),
            for_what: WaitingFor::Pause,
        });
    }
    let cleared = Cleared {
        tenant_id: d.tenant_id,
        tenant: &d.tenant,
        incident_id: d.incident_id,
        vendor: d.signature_inputs.vendor.as_deref(),
        action_id: c.action_id,
        attempt: i32::try_from(c.attempt).unwrap_or(i32::MAX),
        due,
        why,
        now: c.now,
    };
    safety_checks(ctx, cleared).await
}

/// The checks after the mode, in order: the vendor's breaker (open or
/// half-open: a hold), the hard limits (reserved; over one: an
/// escalation), then the tenant's and the vendor's rate limits (denied:
/// paced later, never dropped).
pub(crate) async fn safety_checks(
    ctx: &Context,
    c: Cleared<'_>,
) -> Result<Admitted, AdmissionError> {
    let rules = ctx.rules.current();
    if let Some(vendor) = c.vendor {
        match ctx.breakers.check(vendor, awfdrs_guard::now()) {
            Admission::Allow => {}
            Admission::Deny { .. } => {
                return Ok(Admitted::Hold(format!(
                    "the breaker of {vendor} is open: held until it half-opens"
                )));
            }
            // Half-open: only the breaker's probes go, and they are taken
            // from the holds, oldest first.
            Admission::Probe => {
                return Ok(Admitted::Hold(format!(
                    "the breaker of {vendor} is half-open: held for its turn as a probe"
                )));
            }
        }
    }
    let attempt = NewRetryAttempt {
        tenant_id: c.tenant_id,
        incident_id: c.incident_id,
        action_id: c.action_id,
        attempt: c.attempt,
        workflow_run_id: None,
        vendor: c.vendor.map(str::to_owned),
        attempted_at: c.now,
    };
    if let Some((why, stopped)) = over_hard_limit(ctx, &attempt).await? {
        return Ok(Admitted::Escalate(why, Some(stopped)));
    }
    let mut keys = vec![(
        RateKey::Tenant(c.tenant.to_owned()),
        rules.tenant_rate_limit(),
    )];
    if let Some(vendor) = c.vendor {
        keys.push((
            RateKey::Vendor(vendor.to_owned()),
            rules.vendor(vendor).rate_limit,
        ));
    }
    let (mut due, mut why) = (c.due, c.why);
    for (key, limit) in keys {
        if let Decision::Deny { retry_after } = ctx.rate_limits.check(&key, &limit).await? {
            // Paced, not dropped: due when the rate allows it.
            let wait = chrono::Duration::from_std(retry_after.min(Duration::from_secs(3600)))
                .unwrap_or_default();
            due = due.max(c.now + wait);
            why.push_str(&format!(", paced by the {key} rate limit"));
        }
    }
    Ok(Admitted::Retry { due, why })
}

/// Reserves `attempt` within the hard limits (again: counted once); over
/// one, why, and the limit with its config key.
///
/// # Errors
/// When the limits cannot be asked.
pub(crate) async fn over_hard_limit(
    ctx: &Context,
    attempt: &NewRetryAttempt,
) -> Result<Option<(String, StoppedBy)>, AdmissionError> {
    let rules = ctx.rules.current();
    let verdict = ctx
        .hard_limits
        .reserve(&rules.hard_limits(), attempt)
        .await?;
    Ok(match verdict {
        LimitVerdict::Exceeded(hit) => Some((
            format!("hard limit reached: {hit}"),
            StoppedBy {
                limit: hit.exceeded.to_string(),
                config_key: hit.config_key.to_owned(),
            },
        )),
        LimitVerdict::Within { .. } => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stricter_of_the_tenants_and_the_codes_mode_applies() {
        let low = Severity::Low;
        for (tenant, code, want) in [
            (Mode::Auto, None, Mode::Auto),
            (Mode::Auto, Some(Mode::Shadow), Mode::Shadow),
            (Mode::Auto, Some(Mode::Off), Mode::Off),
            (Mode::Off, Some(Mode::Auto), Mode::Off),
            (Mode::Shadow, Some(Mode::Approve), Mode::Shadow),
            (Mode::Approve, Some(Mode::Auto), Mode::Approve),
            (Mode::Auto, Some(Mode::Approve), Mode::Approve),
        ] {
            assert_eq!(
                effective_mode(tenant, code, low, low),
                want,
                "{tenant} {code:?}"
            );
        }
    }

    #[test]
    fn approve_below_the_threshold_goes_ahead_as_auto() {
        let m = effective_mode(Mode::Approve, None, Severity::Medium, Severity::High);
        assert_eq!(m, Mode::Auto);
        let m = effective_mode(Mode::Approve, None, Severity::High, Severity::High);
        assert_eq!(m, Mode::Approve);
        // The threshold concerns approval only.
        let m = effective_mode(
            Mode::Auto,
            Some(Mode::Shadow),
            Severity::Low,
            Severity::High,
        );
        assert_eq!(m, Mode::Shadow);
    }
}
