//! What the remediation modes of `awfdrs bench` write and read back:
//! incidents that each have one failure and a recorded decision (for the
//! coordinator to act on), incidents that each have a scheduled retry (for
//! the scheduler to fire), and when their actions were recorded and fired.
//! Each chunk is written with one multi-row `INSERT … UNNEST` per table.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Store, StoreError};

/// Incidents of one tenant with one failure each, in columns: one entry per
/// incident in every slice.
#[derive(Debug, Clone, Copy)]
pub struct SeedIncidents<'a> {
    pub ids: &'a [Uuid],
    /// Each its own workflow, so its own signature (`bench:<workflow>`), run
    /// (`run-<workflow>`) and failure (idempotency key `bench-<workflow>`).
    pub workflows: &'a [String],
    pub vendors: &'a [String],
    pub correlation_ids: &'a [String],
    /// The error code of every failure.
    pub code: &'a str,
    /// When the failures happened.
    pub at: DateTime<Utc>,
}

/// When a remediation mode's action was recorded, due and fired.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BenchActionTimes {
    pub incident_id: Uuid,
    pub kind: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub due_at: Option<DateTime<Utc>>,
    pub fired_at: Option<DateTime<Utc>>,
    /// The admission step paced it (a rate limit denied it at first).
    pub paced: bool,
}

impl Store {
    /// Writes incidents that are `ANALYZING`, each with its failure event
    /// and its `opened` decision (`decisions[k]`, whose body is
    /// `bodies[k]`, a `DecisionV1` in JSON), in one transaction.
    ///
    /// # Errors
    /// On database failure; nothing is written then.
    pub async fn bench_seed_decided(
        &self,
        tenant: Uuid,
        incidents: SeedIncidents<'_>,
        decisions: &[Uuid],
        bodies: &[String],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = insert_incidents(&mut tx, tenant, &incidents, "ANALYZING").await?;
        sqlx::query(
            "INSERT INTO decisions (id, tenant_id, incident_id, trigger, engine, engine_version,
                 recommended, confidence, body, created_at)
             SELECT d, $1, i, b #>> '{trigger}', b #>> '{engine,name}', b #>> '{engine,version}',
                    b #>> '{recommended_action,action}', (b ->> 'confidence')::real, b, $2
             FROM (SELECT i, d, b::jsonb AS b
                   FROM UNNEST($3::uuid[], $4::uuid[], $5::text[]) AS r(i, d, b)) r",
        )
        .bind(tenant)
        .bind(incidents.at)
        .bind(incidents.ids)
        .bind(decisions)
        .bind(bodies)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Writes incidents that are `ACTIONED`, each with its failure event
    /// and its first retry (`actions[k]`, attempt 1) `SCHEDULED` at
    /// `due[k]`, with the timeline entry the coordinator would write, in one
    /// transaction.
    ///
    /// # Errors
    /// On database failure; nothing is written then.
    pub async fn bench_seed_scheduled(
        &self,
        tenant: Uuid,
        incidents: SeedIncidents<'_>,
        actions: &[Uuid],
        due: &[DateTime<Utc>],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = insert_incidents(&mut tx, tenant, &incidents, "ACTIONED").await?;
        sqlx::query(
            "INSERT INTO actions (id, tenant_id, incident_id, kind, status, attempt, due_at, reason,
                 vendor, workflow_id, workflow_run_id, step, idempotency_key, correlation_id,
                 created_at, updated_at)
             SELECT a, $1, i, 'retry', 'SCHEDULED', 1, due, 'attempt 1 by policy bench',
                    v, wf, 'run-' || wf, 'charge', 'bench-' || wf, c, $2, $2
             FROM UNNEST($3::uuid[], $4::uuid[], $5::timestamptz[], $6::text[], $7::text[],
                         $8::text[]) AS r(a, i, due, wf, v, c)",
        )
        .bind(tenant)
        .bind(incidents.at)
        .bind(actions)
        .bind(incidents.ids)
        .bind(due)
        .bind(incidents.workflows)
        .bind(incidents.vendors)
        .bind(incidents.correlation_ids)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO action_transitions (tenant_id, action_id, from_status, to_status, actor,
                 reason)
             SELECT $1, a, NULL, 'SCHEDULED', 'coordinator', 'attempt 1 by policy bench'
             FROM UNNEST($2::uuid[]) AS r(a)",
        )
        .bind(tenant)
        .bind(actions)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Vacuums and analyzes the tables the remediation modes write, so the
    /// workers plan their queries on settled tables with statistics.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_vacuum(&self) -> Result<(), StoreError> {
        for table in [
            "actions",
            "action_transitions",
            "decisions",
            "incidents",
            "events",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM (ANALYZE) {table}")))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Moves every scheduled retry of the tenant `by` later (earlier when
    /// negative) and, on the commit, wakes the schedulers as the
    /// coordinator does when it schedules a retry (`NOTIFY` on
    /// [`RETRIES_CHANNEL`](crate::RETRIES_CHANNEL)).
    ///
    /// # Errors
    /// On database failure; nothing moves then.
    pub async fn bench_shift_due(
        &self,
        tenant: Uuid,
        by: chrono::Duration,
    ) -> Result<u64, StoreError> {
        let micros = by.num_microseconds().unwrap_or(i64::MAX);
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE actions SET due_at = due_at + $2 * interval '1 microsecond'
             WHERE tenant_id = $1 AND status = 'SCHEDULED'",
        )
        .bind(tenant)
        .bind(micros)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(crate::RETRIES_CHANNEL)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// The tenant's actions, and how many of them have fired.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_fired(&self, tenant: Uuid) -> Result<(i64, i64), StoreError> {
        Ok(
            sqlx::query_as("SELECT count(*), count(fired_at) FROM actions WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// When each of the tenant's actions was recorded, due and fired.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_action_times(
        &self,
        tenant: Uuid,
    ) -> Result<Vec<BenchActionTimes>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT incident_id, kind, status, created_at, due_at, fired_at,
                    reason LIKE '%paced by%' AS paced
             FROM actions WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Inserts the incidents, in `status`, and their failure events.
async fn insert_incidents(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    s: &SeedIncidents<'_>,
    status: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "INSERT INTO incidents (id, tenant_id, signature, workflow_id, error_code, error_code_raw,
             vendor, step, status, event_count, first_seen, last_seen, created_at, updated_at,
             analyzing_at, actioned_at)
         SELECT i, $1, 'bench:' || wf, wf, $2, $2, v, 'charge', $3, 1, $4, $4, $4, $4, $4,
                CASE WHEN $3 = 'ACTIONED' THEN $4 END
         FROM UNNEST($5::uuid[], $6::text[], $7::text[]) AS r(i, wf, v)",
    )
    .bind(tenant)
    .bind(s.code)
    .bind(status)
    .bind(s.at)
    .bind(s.ids)
    .bind(s.workflows)
    .bind(s.vendors)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO events (id, tenant_id, idempotency_key, workflow_id, event_type, occurred_at,
             received_at, workflow_run_id, step, vendor, error_code, error_code_raw, error_message,
             http_status, retryable, attempt, correlation_id, signature, body_hash, source)
         SELECT gen_random_uuid(), $1, 'bench-' || wf, wf, 'step_failed', $3, $3, 'run-' || wf,
                'charge', v, $2, $2, 'the vendor did not answer in time', 504, true, 1, c,
                'bench:' || wf, sha256(convert_to(wf, 'UTF8')), 'nats'
         FROM UNNEST($4::text[], $5::text[], $6::text[]) AS r(wf, v, c)",
    )
    .bind(tenant)
    .bind(s.code)
    .bind(s.at)
    .bind(s.workflows)
    .bind(s.vendors)
    .bind(s.correlation_ids)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}
