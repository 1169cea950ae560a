//! The benchmark's growth: events (with their idempotency keys) written
//! straight into `events` and `ingest_keys` before the modes run, and
//! what the stored events take on disk.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Store, StoreError};

/// The events `bench_preload_events` writes: each is one of the templates
/// (the columns of an event as the detector stores it, one entry per
/// template), of one of the tenants, received `spacing_seconds` after the
/// one before it from `from` on.
#[derive(Debug, Clone, Copy)]
pub struct PreloadShape<'a> {
    pub tenants: &'a [Uuid],
    pub event_types: &'a [&'a str],
    pub workflows: &'a [String],
    pub vendors: &'a [Option<String>],
    pub error_codes: &'a [Option<String>],
    pub error_codes_raw: &'a [Option<String>],
    pub error_messages: &'a [Option<String>],
    pub http_statuses: &'a [Option<i32>],
    pub retryable: &'a [Option<bool>],
    /// The metadata as JSON text.
    pub metadata: &'a [Option<String>],
    /// One per tenant and template, tenant after tenant; none for
    /// successes.
    pub signatures: &'a [Option<String>],
    pub from: DateTime<Utc>,
    pub spacing_seconds: f64,
}

/// The rows and on-disk size of `events` and `ingest_keys`, every
/// partition with its indexes and TOAST.
#[derive(Debug, Clone, Copy)]
pub struct BenchStorage {
    pub events: i64,
    pub ingest_keys: i64,
    pub events_bytes: i64,
    pub ingest_keys_bytes: i64,
}

impl Store {
    /// Makes the partition of every day (UTC) from `from` to `to` that has
    /// none.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_make_day_partitions(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "SELECT events_make_partition(d::date)
             FROM generate_series(($1 AT TIME ZONE 'UTC')::date, ($2 AT TIME ZONE 'UTC')::date,
                                  interval '1 day') AS d
             ORDER BY d",
        )
        .bind(from)
        .bind(to)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes events `first .. first + n` of the shape, each with its
    /// `ingest_keys` row and counted in its vendor's minute (as the detector
    /// writes them for an event published to NATS), in one statement: keys `preload-<i>`, tenants in turn,
    /// templates spread.
    ///
    /// # Errors
    /// On database failure; nothing of the statement is written then.
    pub async fn bench_preload_events(
        &self,
        shape: PreloadShape<'_>,
        first: u64,
        n: u64,
    ) -> Result<u64, StoreError> {
        let to_i32 = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let done: i64 = sqlx::query_scalar(
            "WITH e AS (
                 INSERT INTO events (id, tenant_id, idempotency_key, workflow_id, event_type,
                     occurred_at, received_at, workflow_run_id, step, vendor, error_code,
                     error_code_raw, error_message, http_status, retryable, attempt,
                     correlation_id, signature, body_hash, source, metadata)
                 SELECT id, ($1::uuid[])[t], key, ($2::text[])[k], ($3::text[])[k],
                        at - interval '250 milliseconds', at, 'run-' || g, 'charge',
                        ($4::text[])[k], ($5::text[])[k], ($6::text[])[k], ($7::text[])[k],
                        ($8::integer[])[k], ($9::boolean[])[k], 1, id::text,
                        ($10::text[])[(t - 1) * $11 + k], sha256(convert_to(key, 'UTF8')),
                        'nats', ($12::text[])[k]::jsonb
                 FROM generate_series($13::bigint, $14::bigint) g,
                      LATERAL (SELECT gen_random_uuid() AS id,
                                      1 + (g % $15)::integer AS t,
                                      1 + ((g * 7919) % $11)::integer AS k,
                                      'preload-' || lpad(g::text, 12, '0') AS key,
                                      $16::timestamptz + g * $17::double precision
                                          * interval '1 second' AS at) a
                 RETURNING tenant_id, idempotency_key, id, body_hash, correlation_id, received_at,
                           vendor, occurred_at, workflow_id, step, error_code, event_type),
             k AS (
                 INSERT INTO ingest_keys (tenant_id, idempotency_key, event_id, body_hash,
                     correlation_id, created_at)
                 SELECT tenant_id, idempotency_key, id, body_hash, correlation_id, received_at
                 FROM e),
             v AS (
             INSERT INTO vendor_minutes AS m (vendor, minute, tenant_id, workflow_id, step,
                 error_code, calls, failures, successes)
             SELECT vendor, date_trunc('minute', occurred_at, 'UTC'), tenant_id, workflow_id,
                    step, error_code, count(*),
                    count(*) FILTER (WHERE event_type IN ('step_failed', 'workflow_failed')),
                    count(*) FILTER (WHERE event_type IN ('step_succeeded', 'workflow_succeeded'))
             FROM e WHERE vendor IS NOT NULL
             GROUP BY 1, 2, 3, 4, 5, 6
             ON CONFLICT (vendor, minute, tenant_id, workflow_id, step, error_code) DO UPDATE
             SET calls = m.calls + excluded.calls,
                 failures = m.failures + excluded.failures,
                 successes = m.successes + excluded.successes)
             SELECT count(*) FROM e",
        )
        .bind(shape.tenants)
        .bind(shape.workflows)
        .bind(shape.event_types)
        .bind(shape.vendors)
        .bind(shape.error_codes)
        .bind(shape.error_codes_raw)
        .bind(shape.error_messages)
        .bind(shape.http_statuses)
        .bind(shape.retryable)
        .bind(shape.signatures)
        .bind(to_i32(shape.workflows.len().max(1)))
        .bind(shape.metadata)
        .bind(to_i64(first))
        .bind(to_i64(first.saturating_add(n)).saturating_sub(1))
        .bind(to_i32(shape.tenants.len().max(1)))
        .bind(shape.from)
        .bind(shape.spacing_seconds)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(done).unwrap_or(0))
    }

    /// The rows of `events` and `ingest_keys` and what they take on disk:
    /// the table and, when it is partitioned, every partition
    /// (`pg_partition_tree` lists none of a plain table).
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_storage(&self) -> Result<BenchStorage, StoreError> {
        let (events, ingest_keys, events_bytes, ingest_keys_bytes): (i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT (SELECT count(*) FROM events),
                        (SELECT count(*) FROM ingest_keys),
                        (SELECT sum(pg_total_relation_size(r))::bigint FROM
                             (SELECT 'events'::regclass AS r
                              UNION SELECT relid FROM pg_partition_tree('events')) t),
                        (SELECT sum(pg_total_relation_size(r))::bigint FROM
                             (SELECT 'ingest_keys'::regclass AS r
                              UNION SELECT relid FROM pg_partition_tree('ingest_keys')) t)",
            )
            .fetch_one(&self.pool)
            .await?;
        Ok(BenchStorage {
            events,
            ingest_keys,
            events_bytes,
            ingest_keys_bytes,
        })
    }
}
