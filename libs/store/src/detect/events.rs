//! Persisting the batch's events: one insert of those whose key the
//! arbiter gave them (`ingest_keys` decides first deliveries and repeats;
//! the partitioned events table has no uniqueness over keys).

use sqlx::PgConnection;

use super::NewEvent;
use crate::StoreError;

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
    correlation_id, signature, body_hash, source, metadata, error_code_raw)";

/// Inserts `evs`.
pub(super) async fn insert(tx: &mut PgConnection, evs: &[&NewEvent]) -> Result<(), StoreError> {
    if evs.is_empty() {
        return Ok(());
    }
    sqlx::query(INSERT_EVENTS)
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
        .execute(&mut *tx)
        .await?;
    Ok(())
}
