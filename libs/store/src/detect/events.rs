//! Persisting the batch's events: one insert, then telling a first
//! delivery from a repeat of the same body or a conflicting one.

use std::collections::{BTreeMap, HashSet};

use sqlx::PgConnection;
use uuid::Uuid;

use super::{DetectOutcome, NewEvent};
use crate::StoreError;

/// An event already stored under a key of the batch.
#[derive(sqlx::FromRow)]
struct StoredEventRow {
    id: Uuid,
    body_hash: Vec<u8>,
}
const INSERT_EVENTS: &str = "
INSERT INTO events (id, tenant_id, idempotency_key, workflow_id, event_type, occurred_at,
    workflow_run_id, step, vendor, error_code, error_message, http_status, retryable, attempt,
    correlation_id, signature, body_hash, source, metadata, error_code_raw)
SELECT id, tenant_id, idempotency_key, workflow_id, event_type, occurred_at,
    workflow_run_id, step, vendor, error_code, error_message, http_status, retryable, attempt,
    correlation_id, signature, body_hash, source, metadata::jsonb, error_code_raw
FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int[], $13::bool[],
    $14::int[], $15::text[], $16::text[], $17::bytea[], $18::text[], $19::text[], $20::text[])
    AS u(id, tenant_id, idempotency_key, workflow_id, event_type, occurred_at,
    workflow_run_id, step, vendor, error_code, error_message, http_status, retryable, attempt,
    correlation_id, signature, body_hash, source, metadata, error_code_raw)
ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
RETURNING id";

/// Inserts `evs` (the event at `pos` is the batch's `kept[pos]`) and files
/// each under `out.inserted`, `out.duplicates` or `out.conflicts`.
pub(super) async fn insert(
    tx: &mut PgConnection,
    evs: &[&NewEvent],
    kept: &[usize],
    out: &mut DetectOutcome,
) -> Result<(), StoreError> {
    let inserted_ids: Vec<Uuid> = sqlx::query_scalar(INSERT_EVENTS)
        .bind(evs.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(evs.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
        .bind(
            evs.iter()
                .map(|e| e.idempotency_key.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            evs.iter()
                .map(|e| e.workflow_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(evs.iter().map(|e| e.event_type).collect::<Vec<_>>())
        .bind(evs.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
        .bind(
            evs.iter()
                .map(|e| e.workflow_run_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(evs.iter().map(|e| e.step.clone()).collect::<Vec<_>>())
        .bind(evs.iter().map(|e| e.vendor.clone()).collect::<Vec<_>>())
        .bind(evs.iter().map(|e| e.error_code.clone()).collect::<Vec<_>>())
        .bind(
            evs.iter()
                .map(|e| e.error_message.clone())
                .collect::<Vec<_>>(),
        )
        .bind(evs.iter().map(|e| e.http_status).collect::<Vec<_>>())
        .bind(evs.iter().map(|e| e.retryable).collect::<Vec<_>>())
        .bind(evs.iter().map(|e| e.attempt).collect::<Vec<_>>())
        .bind(
            evs.iter()
                .map(|e| e.correlation_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(evs.iter().map(|e| e.signature.clone()).collect::<Vec<_>>())
        .bind(evs.iter().map(|e| e.body_hash.clone()).collect::<Vec<_>>())
        .bind(evs.iter().map(|e| e.source).collect::<Vec<_>>())
        .bind(evs.iter().map(|e| e.metadata.clone()).collect::<Vec<_>>())
        .bind(
            evs.iter()
                .map(|e| e.error_code_raw.clone())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;
    let inserted: HashSet<Uuid> = inserted_ids.into_iter().collect();

    // Keys that were already there: same body is a duplicate, another
    // body a conflict. A key repeated inside the batch is inserted once.
    let mut claimed = HashSet::new();
    let mut seen_ids = Vec::new();
    for (pos, e) in evs.iter().enumerate() {
        let idx = kept[pos];
        if inserted.contains(&e.id) && claimed.insert(e.id) {
            out.inserted.push(idx);
        } else {
            seen_ids.push((idx, e.id, e.body_hash.clone()));
        }
    }
    if !seen_ids.is_empty() {
        let ids: Vec<Uuid> = seen_ids.iter().map(|s| s.1).collect();
        let stored: Vec<StoredEventRow> =
            sqlx::query_as("SELECT id, body_hash FROM events WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?;
        let stored: BTreeMap<Uuid, Vec<u8>> =
            stored.into_iter().map(|r| (r.id, r.body_hash)).collect();
        for (idx, id, hash) in seen_ids {
            if stored.get(&id).is_some_and(|h| *h != hash) {
                out.conflicts.push(idx);
            } else {
                out.duplicates.push(idx);
            }
        }
    }
    out.inserted.sort_unstable();
    out.conflicts.sort_unstable();
    Ok(())
}
