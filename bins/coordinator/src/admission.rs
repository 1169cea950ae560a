//! The admission step before a retry, in its fixed order: the tenant's mode
//! and pause, the vendor's breaker, the hard limits, the rate limits; then
//! the delay its policy and any `Retry-After` give.

use std::time::Duration;

use awfdrs_domain::action::StoppedBy;
use awfdrs_domain::decision::DecisionV1;
use awfdrs_guard::{Admission, Decision, LimitVerdict, RateKey};
use awfdrs_runtime::Context;
use awfdrs_store::{NewRetryAttempt, StoreError, TenantMode};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What the admission step allows a retry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Admitted {
    /// Go ahead at `due`.
    Retry { due: DateTime<Utc>, why: String },
    /// Wait for an operator: the tenant's mode or pause says so.
    Wait(String),
    /// Recorded and never sent: the tenant is in shadow mode.
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

/// One retry to admit: `attempt` of the decision's incident, as action
/// `action_id`, at `now`, `first_seen` being the incident's first failure.
pub(crate) struct Candidate<'a> {
    pub decision: &'a DecisionV1,
    pub mode: &'a TenantMode,
    pub action_id: Uuid,
    pub attempt: u32,
    pub first_seen: DateTime<Utc>,
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
    let mut due = c.now + chrono::Duration::from_std(delay).unwrap_or_default();
    let mut why = format!("attempt {} by policy {policy_name}", c.attempt);

    if c.mode.mode == "shadow" {
        return Ok(Admitted::Shadow {
            due,
            why: format!("shadow mode: would retry ({why})"),
        });
    }
    if c.mode.paused {
        return Ok(Admitted::Wait(
            "automatic retries are paused for this tenant".to_owned(),
        ));
    }
    if c.mode.mode == "approve" {
        return Ok(Admitted::Wait(
            "waiting for an operator's approval".to_owned(),
        ));
    }
    if let Some(vendor) = &d.signature_inputs.vendor {
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
        tenant_id: d.tenant_id,
        incident_id: d.incident_id,
        action_id: c.action_id,
        attempt: i32::try_from(c.attempt).unwrap_or(i32::MAX),
        workflow_run_id: None,
        vendor: d.signature_inputs.vendor.clone(),
        attempted_at: c.now,
    };
    if let Some((why, stopped)) = over_hard_limit(ctx, &attempt).await? {
        return Ok(Admitted::Escalate(why, Some(stopped)));
    }
    let mut keys = vec![(RateKey::Tenant(d.tenant.clone()), rules.tenant_rate_limit())];
    if let Some(vendor) = &d.signature_inputs.vendor {
        keys.push((
            RateKey::Vendor(vendor.clone()),
            rules.vendor(vendor).rate_limit,
        ));
    }
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
