//! The notifier's handler: one transaction per escalation.

use std::sync::Arc;

use awfdrs_bus::{Delivery, Handler, Outcome};
use awfdrs_domain::action::EscalationV1;
use awfdrs_domain::decision::DecisionV1;
use awfdrs_runtime::{Context, outcome_of, retry_transient};
use awfdrs_store::{NewNotification, StoreError};
use tokio::sync::Notify;
use tracing::info;

use crate::recipients;

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
        let mut planned = recipients::escalated(&chosen, &incident, &decision, &e.reason);
        let not_before = quiet_for(&self.ctx, &decision)
            .map(|d| chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or_default());
        for n in &mut planned {
            n.not_before = not_before;
        }
        Ok(Ok(planned))
    }

    /// Queues `planned` in one transaction; returns how many were new.
    async fn commit(&self, planned: &[NewNotification]) -> Result<usize, StoreError> {
        let once = || async {
            let mut work = self.ctx.store.begin_work().await?;
            let mut new = 0;
            for n in planned {
                if work.queue_notification(n).await? {
                    new += 1;
                }
            }
            // Notifications are delivered from their rows: no outbox rows.
            let _none = work.commit().await?;
            Ok::<_, StoreError>(new)
        };
        retry_transient("notification transaction", once).await
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
        match self.commit(&planned).await {
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
/// retry or a recovery can resolve it first: its error code's
/// `notify_after`, for a retryable incident that is not critical; `None`:
/// at once.
fn quiet_for(ctx: &Context, decision: &DecisionV1) -> Option<std::time::Duration> {
    let c = &decision.classification;
    if !c.retryable || c.severity == awfdrs_domain::decision::Severity::Critical {
        return None;
    }
    ctx.rules
        .current()
        .error_code(&decision.signature_inputs.error_code)
        .notify_after
        .filter(|d| !d.is_zero())
}
