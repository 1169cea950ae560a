//! Releasing held retries: every `coordinator.hold_check_ms`, the holds of
//! each vendor whose breaker lets retries through again are released,
//! oldest first. A half-open breaker lets at most its probe count go at a
//! time (each released retry takes a probe slot, held by the retry's action
//! id); a closed one paces them by the vendor's rate limit; an open one
//! keeps them holding. Each release is one transaction: the hold becomes
//! `SUCCEEDED` and the retry it held is recorded `SCHEDULED`, due now (its
//! commit wakes the scheduler). A release over a hard limit ends the hold
//! as `FAILED` with an escalation instead, announced as the coordinator
//! announces every escalation.

use std::time::Duration;

use awfdrs_domain::action::StoppedBy;
use awfdrs_domain::decision::{ActionKind, DecisionV1};
use awfdrs_domain::{ActionStatus, action_id};
use awfdrs_guard::{BreakerState, Decision, RateKey};
use awfdrs_runtime::{Context, Relay, retry_transient};
use awfdrs_store::{HeldRetry, NewAction, NewRetryAttempt, StoreError};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::ACTOR;
use crate::admission::{self, AdmissionError};
use crate::handler::{announcement, escalation};

/// Held retries looked at per vendor per round.
const BATCH: i64 = 100;

/// Runs rounds every `coordinator.hold_check_ms` until `stop`.
pub(crate) async fn run(
    ctx: Context,
    relay: Relay,
    health: awfdrs_telemetry::TaskHealth,
    stop: CancellationToken,
) {
    let every = Duration::from_millis(ctx.config.coordinator.hold_check_ms);
    awfdrs_runtime::rounds::every(every, "release held retries", health, stop, || {
        round(&ctx, &relay)
    })
    .await;
}

/// One round over every vendor with held retries; one vendor's trouble
/// does not stop the others' releases (the last trouble is returned).
async fn round(ctx: &Context, relay: &Relay) -> Result<(), AdmissionError> {
    crate::probes::report(ctx).await.inspect_err(|e| {
        warn!(error = %e, "cannot report probe retries; trying again next round");
    })?;
    let vendors = ctx.store.held_vendors().await.inspect_err(|e| {
        warn!(error = %e, "cannot list held retries; trying again next round");
    })?;
    let mut trouble = Ok(());
    for vendor in vendors {
        if let Err(e) = release_vendor(ctx, relay, &vendor).await {
            warn!(%vendor, error = %e, "releasing held retries failed; trying again next round");
            trouble = Err(e);
        }
    }
    trouble
}

/// Releases what `vendor`'s breaker lets through now, oldest first, until
/// it opens again. Each hold's attempt is reserved within the hard limits
/// before its turn at the breaker, so one a limit stops is escalated
/// without taking a probe slot or a rate-limit token (reserving again, next
/// round, counts it once).
async fn release_vendor(ctx: &Context, relay: &Relay, vendor: &str) -> Result<(), AdmissionError> {
    if ctx.breakers.get(vendor, awfdrs_guard::now()).state == BreakerState::Open {
        return Ok(());
    }
    for hold in ctx.store.held_retries(vendor, BATCH).await? {
        let state = ctx.breakers.get(vendor, awfdrs_guard::now()).state;
        if state == BreakerState::Open {
            break;
        }
        let now = Utc::now();
        let plan = match admission::over_hard_limit(ctx, &attempt_of(&hold, now)).await? {
            Some((why, stopped)) => escalated(&hold, why, stopped),
            None if admitted(ctx, &hold, state).await? => released(&hold, state, now),
            None => break,
        };
        if commit(ctx, relay, &hold, &plan, now).await? {
            let a = &plan.action;
            info!(
                incident = %hold.incident_id, hold = %hold.id, action = %a.id,
                kind = a.kind.as_str(), vendor = %hold.vendor, breaker = %state,
                "held retry ended"
            );
        }
    }
    Ok(())
}

/// Whether the breaker (`state`) lets `hold`'s retry go now: half-open, a
/// probe slot for it; closed, room in the vendor's rate limit.
async fn admitted(
    ctx: &Context,
    hold: &HeldRetry,
    state: BreakerState,
) -> Result<bool, AdmissionError> {
    match state {
        BreakerState::Open => Ok(false),
        BreakerState::HalfOpen => Ok(ctx
            .breakers
            .try_acquire_probe(&hold.vendor, &retry_id(hold).to_string())
            .await?
            .is_some()),
        BreakerState::Closed => {
            let limit = ctx.rules.current().vendor(&hold.vendor).rate_limit;
            let key = RateKey::Vendor(hold.vendor.clone());
            Ok(matches!(
                ctx.rate_limits.check(&key, &limit).await?,
                Decision::Allow { .. }
            ))
        }
    }
}

/// The id of the retry `hold` holds.
fn retry_id(hold: &HeldRetry) -> uuid::Uuid {
    action_id(
        hold.incident_id,
        ActionKind::Retry,
        u32::try_from(hold.attempt).unwrap_or(0),
    )
}

/// The retry attempt `hold` holds, made at `now`, for the hard limits.
fn attempt_of(hold: &HeldRetry, now: DateTime<Utc>) -> NewRetryAttempt {
    NewRetryAttempt {
        tenant_id: hold.tenant_id,
        incident_id: hold.incident_id,
        action_id: retry_id(hold),
        attempt: hold.attempt,
        workflow_run_id: None,
        vendor: Some(hold.vendor.clone()),
        attempted_at: now,
    }
}

/// What ending a hold records: the retry it held, or an escalation.
struct Release {
    action: NewAction,
    /// The hold's end: `SUCCEEDED` released, `FAILED` escalated.
    end: ActionStatus,
    end_reason: String,
    /// For an escalation: the hold's decision, and the limit that stopped it.
    announce: Option<(DecisionV1, StoppedBy)>,
}

/// `hold` released through a breaker in `state`: its retry, due `now`.
fn released(hold: &HeldRetry, state: BreakerState, now: DateTime<Utc>) -> Release {
    Release {
        action: action_of(
            hold,
            ActionKind::Retry,
            ActionStatus::Scheduled,
            hold.attempt,
            Some(now),
            format!(
                "attempt {} released from hold: breaker {state}",
                hold.attempt
            ),
            None,
        ),
        end: ActionStatus::Succeeded,
        end_reason: format!("released: breaker {state}"),
        announce: None,
    }
}

/// `hold` stopped by a hard limit: an escalation naming it.
fn escalated(hold: &HeldRetry, why: String, stopped: StoppedBy) -> Release {
    let decision = hold
        .decision
        .clone()
        .and_then(|d| serde_json::from_value::<DecisionV1>(d).ok());
    Release {
        action: action_of(
            hold,
            ActionKind::Escalate,
            ActionStatus::Succeeded,
            0,
            None,
            why.clone(),
            Some(stopped.config_key.clone()),
        ),
        end: ActionStatus::Failed,
        end_reason: format!("escalated: {why}"),
        announce: decision.map(|d| (d, stopped)),
    }
}

/// An action `hold` leads to, with the hold's workflow and correlation.
fn action_of(
    hold: &HeldRetry,
    kind: ActionKind,
    status: ActionStatus,
    attempt: i32,
    due_at: Option<DateTime<Utc>>,
    reason: String,
    limit_key: Option<String>,
) -> NewAction {
    NewAction {
        id: action_id(hold.incident_id, kind, u32::try_from(attempt).unwrap_or(0)),
        tenant_id: hold.tenant_id,
        incident_id: hold.incident_id,
        decision_id: None,
        kind,
        status,
        attempt,
        shadow: false,
        due_at,
        reason,
        limit_key,
        vendor: Some(hold.vendor.clone()),
        workflow_id: hold.workflow_id.clone(),
        workflow_run_id: hold.workflow_run_id.clone(),
        step: hold.step.clone(),
        idempotency_key: hold.idempotency_key.clone(),
        correlation_id: hold.correlation_id.clone(),
    }
}

/// Ends the hold and records what it leads to (with the escalation's
/// announcement), in one transaction; the relay then publishes it. Returns
/// whether this transaction ended the hold (another coordinator, or the
/// incident's resolution, may have first).
async fn commit(
    ctx: &Context,
    relay: &Relay,
    hold: &HeldRetry,
    plan: &Release,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let once = || async {
        let mut work = ctx.store.begin_work().await?;
        if !work
            .end_hold(hold, plan.end, ACTOR, &plan.end_reason)
            .await?
        {
            return Ok((false, None));
        }
        // Made already (by a decision of its own): the hold still ends.
        let recorded = work.record_action(&plan.action, ACTOR).await?;
        if let (true, Some((d, stopped))) = (recorded, &plan.announce) {
            let e = escalation(d, &plan.action, Some(stopped.clone()), now);
            work.outbox(vec![announcement(ctx, &e)]).await?;
        }
        Ok::<_, StoreError>((true, Some(work.commit().await?)))
    };
    let (ended, committed) = retry_transient("hold release transaction", once).await?;
    if let Some(committed) = committed {
        relay.publish(committed).await;
    }
    Ok(ended)
}
