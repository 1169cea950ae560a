//! The analyzer's handler: one transaction per incident message.

use awfdrs_analysis::{Analyst, LocalAnalyst, Trigger};
use awfdrs_bus::{Delivery, Handler, Outcome};
use awfdrs_domain::decision::DecisionV1;
use awfdrs_domain::{ActionStatus, IncidentOpenedV1};
use awfdrs_runtime::{Context, Relay, outcome_of, retry_transient};
use awfdrs_store::{NewOutbox, StoreError};
use chrono::{DateTime, Utc};
use tracing::info;
use uuid::Uuid;

use crate::ACTOR;
use crate::facts::{self, Gathered};

/// Decides about incidents.
pub struct AnalyzerHandler {
    ctx: Context,
    relay: Relay,
    analyst: Box<dyn Analyst>,
}

impl std::fmt::Debug for AnalyzerHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyzerHandler")
            .field("engine", &self.analyst.engine())
            .finish_non_exhaustive()
    }
}

/// What became of one analysis.
pub(crate) enum Analysed {
    /// A decision was recorded now.
    Decided(Box<DecisionV1>),
    /// This incident and trigger were decided before.
    AlreadyDecided,
    /// There is no such incident.
    Missing,
}

impl AnalyzerHandler {
    /// A handler deciding with the configured engine (`analyzer.engine`;
    /// `local` is the one built in), publishing through `relay`.
    pub fn new(ctx: Context, relay: Relay) -> Self {
        Self::with_analyst(ctx, relay, Box::new(LocalAnalyst::new()))
    }

    /// A handler deciding with `analyst`.
    pub fn with_analyst(ctx: Context, relay: Relay, analyst: Box<dyn Analyst>) -> Self {
        Self {
            ctx,
            relay,
            analyst,
        }
    }

    pub(crate) fn ctx(&self) -> &Context {
        &self.ctx
    }

    /// Analyses `incident` of `tenant` for `trigger`, at `at`: gathers the
    /// facts, decides, and commits the decision with its announcement,
    /// unless this incident and trigger were decided before. Transient
    /// database failures are retried.
    pub(crate) async fn analyse(
        &self,
        tenant: Uuid,
        incident: Uuid,
        trigger: Trigger,
        at: DateTime<Utc>,
        correlation_id: Option<&str>,
    ) -> Result<Analysed, StoreError> {
        let once = || async {
            let id = DecisionV1::id_for(incident, &trigger.key());
            if self.ctx.store.latest_decision(tenant, incident).await? == Some(id) {
                return Ok(Analysed::AlreadyDecided);
            }
            let Gathered::Input(input, vector, keys) =
                facts::gather(&self.ctx, tenant, incident, trigger.clone(), at).await?
            else {
                return Ok(Analysed::Missing);
            };
            let mut decision = self.analyst.analyze(&input);
            if let Some(c) = correlation_id {
                decision.correlation_id = c.to_owned();
            }
            let mut work = self.ctx.store.begin_work().await?;
            work.start_analysis(
                tenant,
                incident,
                ACTOR,
                &format!("analysing ({})", decision.trigger),
            )
            .await?;
            if !work.record_decision(&decision).await? {
                return Ok::<_, StoreError>(Analysed::AlreadyDecided);
            }
            work.store_message_vector(tenant, incident, &vector, &keys)
                .await?;
            work.outbox(vec![NewOutbox {
                tenant_id: tenant,
                subject: self.ctx.bus.ns().decisions(&decision.tenant),
                msg_id: decision.msg_id(),
                payload: serde_json::to_value(&decision).unwrap_or_default(),
                correlation_id: Some(decision.correlation_id.clone()),
            }])
            .await?;
            let committed = work.commit().await?;
            self.relay.publish(committed).await;
            Ok(Analysed::Decided(Box::new(decision)))
        };
        retry_transient("analysis transaction", once).await
    }

    async fn handle_one(&self, d: &Delivery) -> Outcome {
        let message: IncidentOpenedV1 = match serde_json::from_slice(&d.payload) {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Reject(format!(
                    "not an IncidentOpenedV1 message: {}",
                    awfdrs_domain::printable(&e.to_string())
                ));
            }
        };
        let trigger = if let Some(f) = &message.failed_retry {
            // Only a retry of this incident that is recorded as failed: a
            // message naming any other is not about a failed retry.
            let expected = awfdrs_domain::action_id(
                message.incident_id,
                awfdrs_domain::decision::ActionKind::Retry,
                f.attempt,
            );
            if f.action_id != expected {
                return Outcome::Reject(format!(
                    "action {} is not retry attempt {} of incident {}",
                    f.action_id, f.attempt, message.incident_id
                ));
            }
            match self.ctx.store.finished_actions(&[f.action_id]).await {
                Ok(done) if done.contains(&(f.action_id, ActionStatus::Failed)) => {}
                Ok(_) => {
                    return Outcome::Reject(format!(
                        "retry {} of incident {} is not recorded as failed",
                        f.action_id, message.incident_id
                    ));
                }
                Err(e) => return outcome_of(&e, "the analysis"),
            }
            Trigger::RetryFailed(f.attempt)
        } else if message.reopened {
            match self.reopen_count(&message).await {
                Ok(n) => Trigger::Reopened(n),
                Err(e) => return outcome_of(&e, "the analysis"),
            }
        } else {
            Trigger::Opened
        };
        match self
            .analyse(
                message.tenant_id,
                message.incident_id,
                trigger,
                d.published,
                Some(&message.correlation_id),
            )
            .await
        {
            Ok(Analysed::Decided(decision)) => {
                info!(
                    incident = %decision.incident_id, decision = %decision.id,
                    trigger = %decision.trigger,
                    cause = ?decision.root_cause.hypothesis.kind,
                    action = ?decision.recommended_action.action,
                    confidence = decision.confidence, "decided"
                );
                Outcome::Ack
            }
            Ok(Analysed::AlreadyDecided) => Outcome::Ack,
            Ok(Analysed::Missing) => Outcome::Reject(format!(
                "incident {} of tenant {} does not exist",
                message.incident_id, message.tenant_id
            )),
            Err(e) => outcome_of(&e, "the analysis"),
        }
    }

    /// How many times the incident has re-opened (the trigger of a
    /// `reopened` message).
    async fn reopen_count(&self, m: &IncidentOpenedV1) -> Result<u32, StoreError> {
        let n = self
            .ctx
            .store
            .incident(Some(m.tenant_id), m.incident_id)
            .await
            .map(|d| d.incident.reopen_count)
            .or_else(|e| match e {
                StoreError::NotFound => Ok(0),
                e => Err(e),
            })?;
        Ok(u32::try_from(n).unwrap_or(0))
    }
}

impl Handler for AnalyzerHandler {
    async fn ready(&self) -> bool {
        self.ctx.store.ping().await.is_ok()
    }

    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        // Incidents are independent: a few are analysed at once, each in its
        // own transaction; the outcomes keep the batch's order. Two messages
        // about one incident are analysed in turn, so the later decision
        // supersedes the earlier.
        awfdrs_bus::keyed::by_key(
            batch,
            self.ctx.config.analyzer.concurrency,
            |d| {
                serde_json::from_slice::<IncidentOpenedV1>(&d.payload)
                    .ok()
                    .map(|m| m.incident_id)
            },
            |d| self.handle_one(d),
        )
        .await
    }
}
