//! The notifier's handler: one transaction per escalation.

use std::sync::Arc;

use awfdrs_bus::{Delivery, Handler, Outcome};
use awfdrs_domain::action::EscalationV1;
use awfdrs_domain::decision::DecisionV1;
use awfdrs_runtime::{Context, outcome_of};
use awfdrs_store::{NewNotification, StoreError};
use tokio::sync::Notify;
use tracing::info;

use crate::{queue, recipients};

/// Turns escalations into notifications.
#[derive(Debug)]
pub struct NotifierHandler {
    ctx: Context,
    queued: Arc<Notify>,
}

impl NotifierHandler {
    /// A handler over `ctx` that wakes the delivery task through `queued`
    /// when it queued notifications.
    pub fn new(ctx: Context, queued: Arc<Notify>) -> Self {
        Self { ctx, queued }
    }

    /// The notifications `e` calls for: one per channel that takes it.
    async fn plan(
        &self,
        e: &EscalationV1,
    ) -> Result<Result<Vec<NewNotification>, String>, StoreError> {
        let store = &self.ctx.store;
        // Notify of the incident and decision as recorded, not as the
        // message says: anyone who can publish on the subject could forge one.
        let incident = match store.incident(Some(e.tenant_id), e.incident_id).await {
            Ok(detail) => detail.incident,
            Err(StoreError::NotFound) => {
                return Ok(Err(format!(
                    "incident {} of tenant {} is not recorded",
                    e.incident_id, e.tenant_id
                )));
            }
            Err(err) => return Err(err),
        };
        let decision: DecisionV1 = match store.decision(e.decision_id).await? {
            Some(body) => match serde_json::from_value(body) {
                Ok(d) => d,
                Err(err) => {
                    return Ok(Err(format!(
                        "the recorded decision does not read back: {err}"
                    )));
                }
            },
            None => return Ok(Err(format!("decision {} is not recorded", e.decision_id))),
        };
        if decision.incident_id != e.incident_id || decision.tenant_id != e.tenant_id {
            return Ok(Err(format!(
                "decision {} is not about incident {}",
                e.decision_id, e.incident_id
            )));
        }
        let channels = store.channels(e.tenant_id).await?;
        let chosen = recipients::first_level(&channels, decision.classification.severity, None);
        let group = recipients::group_key(&incident, &decision, &self.ctx.rules.current())
            .filter(|_| !queue::window(&self.ctx).is_zero());
        let mut planned =
            recipients::escalated(&chosen, &incident, &decision, &e.reason, group.as_deref());
        // A grouped one waits for the others of its group; one held by
        // notify_after waits for a retry to fix it.
        let wait = quiet_for(&self.ctx, &decision)
            .into_iter()
            .chain(group.is_some().then(|| queue::group_wait(&self.ctx)))
            .max()
            .filter(|d| !d.is_zero());
        let not_before =
            wait.map(|d| chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or_default());
        for n in &mut planned {
            n.not_before = not_before;
        }
        Ok(Ok(planned))
    }

    async fn handle_one(&self, d: &Delivery) -> Outcome {
        let e: EscalationV1 = match serde_json::from_slice(&d.payload) {
            Ok(m) => m,
            Err(err) => {
                return Outcome::Reject(format!(
                    "not an EscalationV1 message: {}",
                    awfdrs_domain::printable(&err.to_string())
                ));
            }
        };
        let planned = match self.plan(&e).await {
            Ok(Ok(planned)) => planned,
            Ok(Err(why)) => return Outcome::Reject(why),
            Err(err) => return outcome_of(&err, "the notifications"),
        };
        match queue::commit(&self.ctx, &planned).await {
            Ok(new) => {
                if new > 0 {
                    self.queued.notify_one();
                }
                info!(
                    incident = %e.incident_id, action = %e.action_id, level = e.level,
                    channels = planned.len(), new, "escalation notified"
                );
                Outcome::Ack
            }
            Err(err) => outcome_of(&err, "the notifications"),
        }
    }
}

impl Handler for NotifierHandler {
    async fn ready(&self) -> bool {
        self.ctx.store.ping().await.is_ok()
    }

    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for d in batch {
            outcomes.push(self.handle_one(d).await);
        }
        outcomes
    }
}

/// How long a notification about `decision`'s incident waits, so that a
/// retry or a recovery can resolve it first: for a retryable incident, its
/// error code's `notify_after`, else its severity's (rules); `None`: at
/// once, always for a critical one.
fn quiet_for(ctx: &Context, decision: &DecisionV1) -> Option<std::time::Duration> {
    let c = &decision.classification;
    if !c.retryable {
        return None;
    }
    ctx.rules
        .current()
        .notify_after(&decision.signature_inputs.error_code, c.severity)
}
