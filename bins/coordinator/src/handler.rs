//! The coordinator's handler: one transaction per decision.

use awfdrs_bus::{Delivery, Handler, Outcome};
use awfdrs_domain::action::{EscalationV1, StoppedBy};
use awfdrs_domain::decision::{ActionKind, DecisionV1};
use awfdrs_domain::{ActionStatus, action_id};
use awfdrs_rules::Mode;
use awfdrs_runtime::{Context, Relay, outcome_of, retry_transient};
use awfdrs_store::{NewAction, NewOutbox, StoreError, WaitingFor};
use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::ACTOR;

/// Incidents whose decisions are acted on at once.
const CONCURRENCY: usize = 4;

/// The incident a decision message is about, if it reads as one.
fn incident_of(d: &Delivery) -> Option<uuid::Uuid> {
    #[derive(serde::Deserialize)]
    struct About {
        incident_id: uuid::Uuid,
    }
    serde_json::from_slice::<About>(&d.payload)
        .ok()
        .map(|a| a.incident_id)
}
use crate::admission::{self, AdmissionError, Admitted, Candidate};

/// Turns decisions into actions.
#[derive(Debug)]
pub struct CoordinatorHandler {
    ctx: Context,
    relay: Relay,
}

/// One planned action, what it waits for, and the escalation it announces.
struct Plan {
    action: NewAction,
    waiting: Option<WaitingFor>,
    escalation: Option<EscalationV1>,
}

impl CoordinatorHandler {
    /// A handler over `ctx`, publishing through `relay`.
    pub fn new(ctx: Context, relay: Relay) -> Self {
        Self { ctx, relay }
    }

    /// The action `d` calls for at `now`, after admission.
    async fn plan(
        &self,
        d: &DecisionV1,
        now: DateTime<Utc>,
    ) -> Result<Option<Plan>, AdmissionError> {
        let store = &self.ctx.store;
        let tenant = store.tenant_mode(d.tenant_id).await?;
        let rules = self.ctx.rules.current();
        let mode = admission::effective_mode(
            // The table allows only the four names; anything else is taken
            // as the strictest.
            tenant.mode.parse().unwrap_or(Mode::Off),
            rules.mode_for(&d.signature_inputs.error_code),
            d.classification.severity,
            rules.approve_min_severity(),
        );
        if mode == Mode::Off {
            return Ok(None);
        }
        let shadow = mode == Mode::Shadow;
        // A later decision about an incident whose retry is held, due or in
        // flight changes nothing: that retry answers it first.
        if store.retry_in_progress(d.tenant_id, d.incident_id).await? {
            return Ok(None);
        }
        let attempt =
            u32::try_from(store.next_attempt(d.tenant_id, d.incident_id).await?).unwrap_or(1);
        let rec = &d.recommended_action;
        let mut waiting = None;
        let (kind, status, attempt, due, reason, stopped) = match rec.action {
            ActionKind::None => (
                ActionKind::None,
                ActionStatus::Succeeded,
                0,
                None,
                rec.reason.clone(),
                None,
            ),
            ActionKind::Escalate => (
                ActionKind::Escalate,
                ActionStatus::Succeeded,
                0,
                None,
                rec.reason.clone(),
                None,
            ),
            // A hold the analyzer recommends (the breaker was open when it
            // decided) is a retry like any other: the mode comes first, then
            // the breaker, which holds it if it is still not letting retries
            // through.
            ActionKind::Hold | ActionKind::Retry => {
                let first_seen = match store.incident(Some(d.tenant_id), d.incident_id).await {
                    Ok(detail) => detail.incident.first_seen,
                    Err(StoreError::NotFound) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let candidate = Candidate {
                    decision: d,
                    mode,
                    paused: tenant.paused,
                    action_id: action_id(d.incident_id, ActionKind::Retry, attempt),
                    attempt,
                    first_seen,
                    now,
                };
                match admission::admit(&self.ctx, &candidate).await? {
                    Admitted::Retry { due, why } => (
                        ActionKind::Retry,
                        ActionStatus::Scheduled,
                        attempt,
                        Some(due),
                        why,
                        None,
                    ),
                    Admitted::Shadow { due, why } => (
                        ActionKind::Retry,
                        ActionStatus::Pending,
                        attempt,
                        Some(due),
                        why,
                        None,
                    ),
                    Admitted::Wait { due, why, for_what } => {
                        waiting = Some(for_what);
                        (
                            ActionKind::Retry,
                            ActionStatus::Pending,
                            attempt,
                            Some(due),
                            why,
                            None,
                        )
                    }
                    Admitted::Hold(why) => (
                        ActionKind::Hold,
                        ActionStatus::Pending,
                        attempt,
                        None,
                        why,
                        None,
                    ),
                    Admitted::Escalate(why, stopped) => (
                        ActionKind::Escalate,
                        ActionStatus::Succeeded,
                        0,
                        None,
                        why,
                        stopped,
                    ),
                }
            }
        };
        let kind_status = if shadow && kind != ActionKind::None {
            ActionStatus::Pending
        } else {
            status
        };
        let s = &d.signature_inputs;
        let (workflow_run_id, step, idempotency_key) =
            match store.latest_failure(d.tenant_id, d.incident_id).await? {
                Some((run, step, key)) => (run, step, Some(key)),
                None => (None, s.step.clone(), None),
            };
        let action = NewAction {
            id: action_id(d.incident_id, kind, attempt),
            tenant_id: d.tenant_id,
            incident_id: d.incident_id,
            decision_id: Some(d.id),
            kind,
            status: kind_status,
            attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
            shadow,
            due_at: due,
            reason: reason.clone(),
            limit_key: stopped.as_ref().map(|s: &StoppedBy| s.config_key.clone()),
            vendor: s.vendor.clone(),
            workflow_id: s.workflow_id.clone(),
            workflow_run_id,
            step,
            idempotency_key,
            correlation_id: d.correlation_id.clone(),
        };
        let escalation =
            (kind == ActionKind::Escalate && !shadow).then(|| escalation(d, &action, stopped, now));
        Ok(Some(Plan {
            action,
            waiting,
            escalation,
        }))
    }

    /// Records the plan, moves the incident to `ACTIONED` and announces an
    /// escalation, in one transaction; the relay then publishes it.
    async fn commit(&self, plan: &Plan) -> Result<bool, StoreError> {
        let once = || async {
            let mut work = self.ctx.store.begin_work().await?;
            if !work.record_action(&plan.action, ACTOR).await? {
                return Ok((false, None));
            }
            let a = &plan.action;
            if let Some(what) = plan.waiting {
                work.mark_waiting(a.tenant_id, a.id, what).await?;
            }
            work.mark_actioned(
                a.tenant_id,
                a.incident_id,
                ACTOR,
                &format!("{} action: {}", a.kind.as_str(), a.reason),
            )
            .await?;
            if let Some(e) = &plan.escalation {
                work.outbox(vec![announcement(&self.ctx, e)]).await?;
            }
            Ok::<_, StoreError>((true, Some(work.commit().await?)))
        };
        let (recorded, committed) = retry_transient("action transaction", once).await?;
        if let Some(committed) = committed {
            self.relay.publish(committed).await;
        }
        Ok(recorded)
    }

    async fn handle_one(&self, d: &Delivery) -> Outcome {
        let decision: DecisionV1 = match serde_json::from_slice(&d.payload) {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Reject(format!(
                    "not a DecisionV1 message: {}",
                    awfdrs_domain::printable(&e.to_string())
                ));
            }
        };
        // Act on the decision as the analyzer recorded it, not on what the
        // message says: anyone who can publish on the subject could forge one.
        let decision: DecisionV1 = match self.ctx.store.decision(decision.id).await {
            Ok(Some(body)) => match serde_json::from_value(body) {
                Ok(d) => d,
                Err(e) => {
                    return Outcome::Reject(format!(
                        "the recorded decision does not read back: {e}"
                    ));
                }
            },
            Ok(None) => {
                return Outcome::Reject(format!("decision {} is not recorded", decision.id));
            }
            Err(e) => return outcome_of(&e, "the action"),
        };
        match self.ctx.store.decision_acted_on(decision.id).await {
            Ok(true) => return Outcome::Ack,
            Ok(false) => {}
            Err(e) => return outcome_of(&e, "the action"),
        }
        let plan = match self.plan(&decision, d.published).await {
            Ok(Some(plan)) => plan,
            Ok(None) => return Outcome::Ack,
            Err(AdmissionError::Store(e)) => return outcome_of(&e, "the action"),
            Err(AdmissionError::Guard(e)) => {
                warn!(error = %e, "admission could not be asked; trying again");
                return Outcome::Retry(format!("admission: {e}"));
            }
        };
        match self.commit(&plan).await {
            Ok(recorded) => {
                if recorded {
                    let a = &plan.action;
                    info!(
                        incident = %a.incident_id, action = %a.id, kind = a.kind.as_str(),
                        status = a.status.as_str(), attempt = a.attempt, due = ?a.due_at,
                        shadow = a.shadow, reason = %a.reason, "action"
                    );
                }
                Outcome::Ack
            }
            Err(e) => outcome_of(&e, "the action"),
        }
    }
}

/// The escalation announcing `action`, which decision `d` led to at `now`;
/// `stopped` names the limit that stopped its retry, if one did.
pub(crate) fn escalation(
    d: &DecisionV1,
    action: &NewAction,
    stopped: Option<StoppedBy>,
    now: DateTime<Utc>,
) -> EscalationV1 {
    let s = &d.signature_inputs;
    EscalationV1 {
        action_id: action.id,
        incident_id: d.incident_id,
        decision_id: d.id,
        tenant_id: d.tenant_id,
        tenant: d.tenant.clone(),
        workflow_id: s.workflow_id.clone(),
        error_code: s.error_code.clone(),
        vendor: s.vendor.clone(),
        severity: d.classification.severity,
        level: 1,
        reason: action.reason.clone(),
        stopped_by: stopped,
        correlation_id: d.correlation_id.clone(),
        at: now,
    }
}

/// The outbox row that publishes `e` on `<ns>.escalations.<tenant>`.
pub(crate) fn announcement(ctx: &Context, e: &EscalationV1) -> NewOutbox {
    NewOutbox {
        tenant_id: e.tenant_id,
        subject: ctx.bus.ns().escalations(&e.tenant),
        msg_id: e.msg_id(),
        payload: serde_json::to_value(e).unwrap_or_default(),
        correlation_id: Some(e.correlation_id.clone()),
    }
}

impl Handler for CoordinatorHandler {
    async fn ready(&self) -> bool {
        self.ctx.store.ping().await.is_ok()
    }

    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        // Incidents are independent (as competing coordinators are): a few
        // are decided at once, each in its own transactions; the decisions
        // about one incident are acted on in turn, in batch order.
        awfdrs_bus::keyed::by_key(batch, CONCURRENCY, incident_of, |d| self.handle_one(d)).await
    }
}
