//! Moving waiting retries on: every `coordinator.hold_check_ms`, the
//! retries an operator approved and those that waited only for a pause
//! that has ended (`awfdrs resume`), oldest first, pass the rest of the
//! admission step ([`admission::safety_checks`]: the vendor's breaker, the
//! hard limits, the rate limits). Each is one transaction: the retry
//! becomes `SCHEDULED` with its due time (its commit wakes the scheduler),
//! or waits for a hold the open or half-open breaker puts it in (spending
//! no attempt), or ends `FAILED` beside an escalation announced as the
//! coordinator announces every escalation. A retry waiting for approval
//! while its tenant (or every tenant) is paused waits for both.

use std::time::Duration;

use awfdrs_domain::action::StoppedBy;
use awfdrs_domain::decision::{ActionKind, DecisionV1};
use awfdrs_domain::{ActionStatus, action_id};
use awfdrs_runtime::{Context, Relay, retry_transient};
use awfdrs_store::{NewAction, StoreError, WaitingRetry};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::ACTOR;
use crate::admission::{self, AdmissionError, Admitted, Cleared};
use crate::handler::{announcement, escalation};

/// Waiting retries looked at per round.
const BATCH: i64 = 100;

/// Runs rounds every `coordinator.hold_check_ms` until `stop`.
pub(crate) async fn run(
    ctx: Context,
    relay: Relay,
    health: awfdrs_telemetry::TaskHealth,
    stop: CancellationToken,
) {
    let every = Duration::from_millis(ctx.config.coordinator.hold_check_ms);
    awfdrs_runtime::rounds::every(every, "move waiting retries on", health, stop, || {
        round(&ctx, &relay)
    })
    .await;
}

/// One round over the retries that may go on; one retry's trouble does not
/// stop the others (the last trouble is returned).
async fn round(ctx: &Context, relay: &Relay) -> Result<(), AdmissionError> {
    let ready = ctx
        .store
        .ready_waiting_retries(BATCH)
        .await
        .inspect_err(|e| {
            warn!(error = %e, "cannot list waiting retries; trying again next round");
        })?;
    let mut trouble = Ok(());
    for w in ready {
        if let Err(e) = move_on(ctx, relay, &w).await {
            warn!(action = %w.id, error = %e, "moving a waiting retry on failed; trying again next round");
            trouble = Err(e);
        }
    }
    trouble
}

/// What moving a waiting retry on records.
enum Step {
    /// `SCHEDULED`, due then, for the reason.
    Schedule(DateTime<Utc>, String),
    /// Waiting for this hold.
    Hold(NewAction),
    /// `FAILED`, beside this escalation, stopped by this limit.
    Escalate(NewAction, Option<StoppedBy>),
}

/// Passes `w` through the safety checks and records the outcome.
async fn move_on(ctx: &Context, relay: &Relay, w: &WaitingRetry) -> Result<(), AdmissionError> {
    let now = Utc::now();
    let cleared = Cleared {
        tenant_id: w.tenant_id,
        tenant: &w.tenant,
        incident_id: w.incident_id,
        vendor: w.vendor.as_deref(),
        action_id: w.id,
        attempt: w.attempt,
        // As its policy said, or at once when that has passed while it waited.
        due: w.due_at.map_or(now, |d| d.max(now)),
        why: format!("attempt {} {}", w.attempt, cleared_by(w)),
        now,
    };
    let step = match admission::safety_checks(ctx, cleared).await? {
        Admitted::Retry { due, why } => Step::Schedule(due, why),
        Admitted::Hold(why) => Step::Hold(action_of(
            w,
            ActionKind::Hold,
            ActionStatus::Pending,
            w.attempt,
            format!("{}: {why}", cleared_by(w)),
            None,
        )),
        Admitted::Escalate(why, stopped) => Step::Escalate(
            action_of(
                w,
                ActionKind::Escalate,
                ActionStatus::Succeeded,
                0,
                why,
                stopped.as_ref().map(|s| s.config_key.clone()),
            ),
            stopped,
        ),
        // The safety checks neither wait nor shadow.
        Admitted::Wait { .. } | Admitted::Shadow { .. } => return Ok(()),
    };
    if commit(ctx, relay, w, &step, now).await? {
        let what = match &step {
            Step::Schedule(..) => "scheduled",
            Step::Hold(_) => "held",
            Step::Escalate(..) => "escalated",
        };
        info!(
            incident = %w.incident_id, action = %w.id, waited_for = %w.waiting_for,
            approved_by = ?w.approved_by, outcome = what, "waiting retry moved on"
        );
    }
    Ok(())
}

/// Who or what let `w` go: its approver, or the end of the pause.
fn cleared_by(w: &WaitingRetry) -> String {
    match &w.approved_by {
        Some(by) => format!("approved by {by}"),
        None => "resumed after the pause".to_owned(),
    }
}

/// An action `w` leads to, with its workflow and correlation; no decision
/// of its own (the retry names it).
fn action_of(
    w: &WaitingRetry,
    kind: ActionKind,
    status: ActionStatus,
    attempt: i32,
    reason: String,
    limit_key: Option<String>,
) -> NewAction {
    NewAction {
        id: action_id(w.incident_id, kind, u32::try_from(attempt).unwrap_or(0)),
        tenant_id: w.tenant_id,
        incident_id: w.incident_id,
        decision_id: None,
        kind,
        status,
        attempt,
        shadow: false,
        due_at: None,
        reason,
        limit_key,
        vendor: w.vendor.clone(),
        workflow_id: w.workflow_id.clone(),
        workflow_run_id: w.workflow_run_id.clone(),
        step: w.step.clone(),
        idempotency_key: w.idempotency_key.clone(),
        correlation_id: w.correlation_id.clone(),
    }
}

/// Records `step` for `w` in one transaction (with an escalation's
/// announcement); the relay then publishes it. Returns whether this
/// transaction moved it (it may have been cancelled, or moved by another
/// coordinator).
async fn commit(
    ctx: &Context,
    relay: &Relay,
    w: &WaitingRetry,
    step: &Step,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let once = || async {
        let mut work = ctx.store.begin_work().await?;
        let moved = match step {
            Step::Schedule(due, why) => work.schedule_waiting(w, *due, ACTOR, why).await?,
            Step::Hold(hold) => work.hold_waiting(w, hold, ACTOR).await?,
            Step::Escalate(action, stopped) => {
                let moved = work.escalate_waiting(w, action, ACTOR).await?;
                let decision = w
                    .decision
                    .clone()
                    .and_then(|d| serde_json::from_value::<DecisionV1>(d).ok());
                if let (true, Some(d)) = (moved, decision) {
                    let e = escalation(&d, action, stopped.clone(), now);
                    work.outbox(vec![announcement(ctx, &e)]).await?;
                }
                moved
            }
        };
        if !moved {
            return Ok((false, None));
        }
        Ok::<_, StoreError>((true, Some(work.commit().await?)))
    };
    let (moved, committed) = retry_transient("waiting retry transaction", once).await?;
    if let Some(committed) = committed {
        relay.publish(committed).await;
    }
    Ok(moved)
}
