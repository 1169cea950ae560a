//! The detector's batch transaction: persist events, open or update
//! incidents, auto-resolve, and write the outbox, all or nothing.

mod events;
mod incidents;
mod open_after;
mod retries;
mod vendor_minutes;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::arbiter::{self, KeyUse, Verdict};
use crate::{StoreError, Work};

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
    /// The normalised error code.
    pub error_code: Option<String>,
    /// The error code as the producer sent it.
    pub error_code_raw: Option<String>,
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
    /// How many times it has re-opened (0 when opened now).
    pub reopen_count: i32,
    pub correlation_id: String,
    /// For an incident announced again because a retry did not fix its
    /// run: that retry's action id and attempt.
    pub failed_retry: Option<(Uuid, i32)>,
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
    /// Incidents whose fired retry a later failure of the same run failed.
    pub retries_failed: Vec<OpenedIncident>,
}

impl Work {
    /// Persists a batch of events and applies the incident rules in this
    /// transaction. Only events persisted now count towards incidents, so a
    /// redelivered batch changes nothing. The caller announces the incidents
    /// it opened ([`Work::outbox`]) and commits.
    ///
    /// # Errors
    /// On database failure; the transaction is then to be dropped, and
    /// nothing is written.
    pub async fn detect(
        &mut self,
        batch: &DetectBatch,
        settings: DetectSettings,
    ) -> Result<DetectOutcome, StoreError> {
        let out = self.detect_in_turn(batch, settings, async { true }).await?;
        Ok(out.unwrap_or_default())
    }

    /// [`Work::detect`] in two parts: the batch's keys and events are
    /// stored first, which no other batch's incident updates need; then
    /// `turn` is awaited, and the incident rules are applied once it says
    /// `true`. The caller keeps its turn until it committed, so batches
    /// handled at once update incidents in the order they were given
    /// their turns. When `turn` says `false` (it did not come in time)
    /// nothing more is done and None is returned: the caller rolls back,
    /// letting go of the rows it holds, which an earlier batch may be
    /// waiting for (the same key in both), and tries again in its turn.
    ///
    /// # Errors
    /// As [`Work::detect`].
    pub async fn detect_in_turn(
        &mut self,
        batch: &DetectBatch,
        settings: DetectSettings,
        turn: impl std::future::Future<Output = bool>,
    ) -> Result<Option<DetectOutcome>, StoreError> {
        let mut out = DetectOutcome::default();
        if batch.events.is_empty() {
            return Ok(Some(out));
        }
        // Lock rows in a fixed order (by tenant and key) across concurrent
        // detectors, so they queue instead of deadlocking.
        let mut order: Vec<usize> = (0..batch.events.len()).collect();
        order.sort_by(|&a, &b| {
            let (ea, eb) = (&batch.events[a], &batch.events[b]);
            (ea.tenant_id, &ea.idempotency_key).cmp(&(eb.tenant_id, &eb.idempotency_key))
        });
        let sorted: Vec<&NewEvent> = order.iter().map(|&i| &batch.events[i]).collect();

        let tx = self.conn();
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
        let verdicts = arbiter::settle(tx, &uses).await?;
        let mut evs: Vec<&NewEvent> = Vec::with_capacity(sorted.len());
        let mut kept: Vec<usize> = Vec::with_capacity(sorted.len());
        for (pos, verdict) in verdicts.into_iter().enumerate() {
            match verdict {
                Verdict::Store => {
                    evs.push(sorted[pos]);
                    kept.push(order[pos]);
                }
                Verdict::Duplicate => out.duplicates.push(order[pos]),
                Verdict::Conflict => out.conflicts.push(order[pos]),
                Verdict::Abandoned => out.abandoned.push(order[pos]),
            }
        }
        events::insert(tx, &evs).await?;
        out.inserted = kept;
        out.inserted.sort_unstable();
        out.duplicates.sort_unstable();
        out.conflicts.sort_unstable();
        if !turn.await {
            return Ok(None);
        }
        retries::fail_retries(tx, &batch.events, &mut out).await?;

        let mut groups = incidents::group_failures(batch, &out.inserted);
        open_after::apply_open_after(tx, &mut groups, settings.reopen_window_secs).await?;
        incidents::open_or_update(tx, &groups, settings, &mut out).await?;
        let resolved_rows = incidents::count_successes(tx, batch, &out.inserted, settings).await?;
        incidents::write_transitions(tx, &out.opened, &resolved_rows, settings).await?;
        out.resolved = resolved_rows.iter().map(|r| r.0).collect();
        crate::actions::close_for_resolved(tx, &out.resolved, "auto-resolve", true).await?;
        // Last, so no batch waits for another's incident rows while holding
        // these (both lock in their sorted order).
        vendor_minutes::add(tx, &evs).await?;

        Ok(Some(out))
    }
}
