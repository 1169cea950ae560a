//! The detector's batch transaction: persist events, open or update
//! incidents, auto-resolve, and write the outbox, all or nothing.

mod events;
mod incidents;
mod open_after;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::arbiter::{self, KeyUse, Verdict};
use crate::{Store, StoreError};

/// One validated event to persist.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub idempotency_key: String,
    pub workflow_id: String,
    pub event_type: &'static str,
    pub is_failure: bool,
    pub is_success: bool,
    pub occurred_at: DateTime<Utc>,
    pub workflow_run_id: Option<String>,
    pub step: Option<String>,
    pub vendor: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub http_status: Option<i32>,
    pub retryable: Option<bool>,
    pub attempt: Option<i32>,
    pub correlation_id: String,
    /// The failure signature, for failures.
    pub signature: Option<String>,
    pub body_hash: Vec<u8>,
    pub source: &'static str,
    /// The gateway's reservation the message carries (HTTP events only).
    pub reservation: Option<Uuid>,
    pub metadata: Option<String>,
    /// For failures whose rule says so: open an incident only once this many
    /// failures of the signature fall within this many seconds.
    pub open_after: Option<(i64, f64)>,
}

/// Settings of the incident rules applied in the batch.
#[derive(Debug, Clone, Copy)]
pub struct DetectSettings {
    pub reopen_window_secs: u64,
    pub auto_resolve_successes: u32,
}

/// A batch of events to persist.
#[derive(Debug, Default)]
pub struct DetectBatch {
    pub events: Vec<NewEvent>,
}

/// An incident opened (or re-opened) by the batch.
#[derive(Debug, Clone)]
pub struct OpenedIncident {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub signature: String,
    pub workflow_id: String,
    pub error_code: String,
    pub vendor: Option<String>,
    pub step: Option<String>,
    pub reopened: bool,
    pub correlation_id: String,
}

/// A message to publish after commit.
#[derive(Debug, Clone)]
pub struct NewOutbox {
    pub tenant_id: Uuid,
    pub subject: String,
    pub msg_id: String,
    pub payload: serde_json::Value,
    pub correlation_id: Option<String>,
}

/// What the batch did.
#[derive(Debug, Default)]
pub struct DetectOutcome {
    /// Indexes (into the batch) of events persisted now.
    pub inserted: Vec<usize>,
    /// Indexes of events whose key was already persisted with the same body.
    pub duplicates: Vec<usize>,
    /// Indexes of events whose key was already persisted with another body.
    pub conflicts: Vec<usize>,
    /// Indexes of gateway publishes the gateway gave up on (it answered
    /// 503): not stored.
    pub abandoned: Vec<usize>,
    pub opened: Vec<OpenedIncident>,
    pub updated_incidents: usize,
    pub resolved: Vec<Uuid>,
    /// Outbox row ids written by the batch, for the relay's fast path.
    pub outbox_ids: Vec<i64>,
}

const INSERT_OUTBOX: &str = "
INSERT INTO outbox (tenant_id, subject, msg_id, payload, correlation_id)
SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::text[])
ON CONFLICT (msg_id) DO NOTHING
RETURNING id";

impl Store {
    /// Persists a batch of events and applies the incident rules, in one
    /// transaction. Only events persisted now count towards incidents, so a
    /// redelivered batch changes nothing. `outbox_for` builds the message to
    /// publish for each incident the batch opens.
    ///
    /// # Errors
    /// On database failure; nothing is written then.
    pub async fn detect_batch(
        &self,
        batch: &DetectBatch,
        settings: DetectSettings,
        outbox_for: &(dyn Fn(&OpenedIncident) -> NewOutbox + Sync),
    ) -> Result<DetectOutcome, StoreError> {
        let mut out = DetectOutcome::default();
        if batch.events.is_empty() {
            return Ok(out);
        }
        // Lock rows in a fixed order (by tenant and key) across concurrent
        // detectors, so they queue instead of deadlocking.
        let mut order: Vec<usize> = (0..batch.events.len()).collect();
        order.sort_by(|&a, &b| {
            let (ea, eb) = (&batch.events[a], &batch.events[b]);
            (ea.tenant_id, &ea.idempotency_key).cmp(&(eb.tenant_id, &eb.idempotency_key))
        });
        let sorted: Vec<&NewEvent> = order.iter().map(|&i| &batch.events[i]).collect();

        let mut tx = self.pool.begin().await?;
        let uses: Vec<KeyUse<'_>> = sorted
            .iter()
            .map(|e| KeyUse {
                tenant_id: e.tenant_id,
                idempotency_key: &e.idempotency_key,
                id: e.id,
                body_hash: &e.body_hash,
                correlation_id: &e.correlation_id,
                reservation: e.reservation,
            })
            .collect();
        let verdicts = arbiter::settle(&mut tx, &uses).await?;
        let mut evs: Vec<&NewEvent> = Vec::with_capacity(sorted.len());
        let mut kept: Vec<usize> = Vec::with_capacity(sorted.len());
        for (pos, verdict) in verdicts.into_iter().enumerate() {
            match verdict {
                Verdict::Persist => {
                    evs.push(sorted[pos]);
                    kept.push(order[pos]);
                }
                Verdict::Conflict => out.conflicts.push(order[pos]),
                Verdict::Abandoned => out.abandoned.push(order[pos]),
            }
        }
        events::insert(&mut tx, &evs, &kept, &mut out).await?;

        let mut groups = incidents::group_failures(batch, &out.inserted);
        open_after::apply_open_after(&mut tx, &mut groups, settings.reopen_window_secs).await?;
        incidents::open_or_update(&mut tx, &groups, settings, &mut out).await?;
        let resolved_rows =
            incidents::count_successes(&mut tx, batch, &out.inserted, settings).await?;
        incidents::write_transitions(&mut tx, &out.opened, &resolved_rows, settings).await?;
        out.resolved = resolved_rows.iter().map(|r| r.0).collect();

        if !out.opened.is_empty() {
            let msgs: Vec<NewOutbox> = out.opened.iter().map(outbox_for).collect();
            out.outbox_ids = sqlx::query_scalar(INSERT_OUTBOX)
                .bind(msgs.iter().map(|m| m.tenant_id).collect::<Vec<_>>())
                .bind(msgs.iter().map(|m| m.subject.clone()).collect::<Vec<_>>())
                .bind(msgs.iter().map(|m| m.msg_id.clone()).collect::<Vec<_>>())
                .bind(msgs.iter().map(|m| m.payload.clone()).collect::<Vec<_>>())
                .bind(
                    msgs.iter()
                        .map(|m| m.correlation_id.clone())
                        .collect::<Vec<_>>(),
                )
                .fetch_all(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}
