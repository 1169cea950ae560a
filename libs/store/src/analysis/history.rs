//! The incident's own failures and its step's history: counts, signals,
//! releases, the successes before it started failing.

use awfdrs_analysis::{FailureSignals, ReleaseFacts, StatusCount, StepHistory};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{FAILURE, IncidentRow, SUCCESS, secs};
use crate::{Store, StoreError};

#[derive(sqlx::FromRow)]
struct FailureRow {
    count: i64,
    first_at: Option<DateTime<Utc>>,
    last_at: Option<DateTime<Utc>>,
    retryable: i64,
    not_retryable: i64,
    retry_after: Option<i64>,
    runs: i64,
}

#[derive(sqlx::FromRow)]
struct StepRow {
    successes: i64,
    last_at: Option<DateTime<Utc>>,
    last_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct ReleaseRow {
    release: String,
    failures: i64,
    successes: i64,
    first_at: DateTime<Utc>,
}

impl Store {
    pub(super) async fn failure_signals(
        &self,
        i: &IncidentRow,
    ) -> Result<FailureSignals, StoreError> {
        let row: FailureRow = sqlx::query_as(
            r"SELECT count(*) AS count, min(occurred_at) AS first_at, max(occurred_at) AS last_at,
                    count(*) FILTER (WHERE retryable) AS retryable,
                    count(*) FILTER (WHERE retryable = false) AS not_retryable,
                    max(CASE WHEN ra ~ '^[0-9]{1,9}$' THEN ra::bigint END) AS retry_after,
                    count(DISTINCT workflow_run_id) AS runs
             FROM (SELECT occurred_at, retryable, workflow_run_id,
                          coalesce(metadata->>'retry_after', metadata->>'Retry-After') AS ra
                   FROM events
                   WHERE tenant_id = $1 AND signature = $2 AND occurred_at >= $3) f",
        )
        .bind(i.tenant_id)
        .bind(&i.signature)
        .bind(i.first_seen)
        .fetch_one(&self.pool)
        .await?;
        let sample: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM events
             WHERE tenant_id = $1 AND signature = $2 AND occurred_at >= $3
             ORDER BY occurred_at, id LIMIT 10",
        )
        .bind(i.tenant_id)
        .bind(&i.signature)
        .bind(i.first_seen)
        .fetch_all(&self.pool)
        .await?;
        let statuses: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT http_status, count(*) FROM events
             WHERE tenant_id = $1 AND signature = $2 AND occurred_at >= $3
               AND http_status IS NOT NULL
             GROUP BY 1 ORDER BY 2 DESC, 1",
        )
        .bind(i.tenant_id)
        .bind(&i.signature)
        .bind(i.first_seen)
        .fetch_all(&self.pool)
        .await?;
        Ok(FailureSignals {
            count: row.count,
            first_at: row.first_at.unwrap_or(i.first_seen),
            last_at: row.last_at.unwrap_or(i.last_seen),
            sample_event_ids: sample,
            http_statuses: statuses
                .into_iter()
                .map(|(status, count)| StatusCount { status, count })
                .collect(),
            producer_retryable: row.retryable,
            producer_not_retryable: row.not_retryable,
            retry_after_secs: row.retry_after.and_then(|s| u64::try_from(s).ok()),
            distinct_runs: row.runs,
            releases: Vec::new(),
        })
    }

    pub(super) async fn step_history(
        &self,
        i: &IncidentRow,
        lookback: u64,
    ) -> Result<StepHistory, StoreError> {
        let sql = format!(
            "SELECT count(*) AS successes, max(occurred_at) AS last_at,
                    (array_agg(id ORDER BY occurred_at DESC, id DESC))[1] AS last_id
             FROM events
             WHERE tenant_id = $1 AND workflow_id = $2 AND step IS NOT DISTINCT FROM $3
               AND {SUCCESS} AND occurred_at < $4 AND occurred_at >= $5"
        );
        let row: StepRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(i.tenant_id)
            .bind(&i.workflow_id)
            .bind(&i.step)
            .bind(i.first_seen)
            .bind(i.first_seen - secs(lookback))
            .fetch_one(&self.pool)
            .await?;
        Ok(StepHistory {
            successes_before: row.successes,
            last_success_at: row.last_at,
            last_success_event: row.last_id,
            lookback_secs: lookback,
        })
    }

    pub(super) async fn releases(
        &self,
        i: &IncidentRow,
        lookback: u64,
    ) -> Result<Vec<ReleaseFacts>, StoreError> {
        let sql = format!(
            "SELECT release, count(*) FILTER (WHERE {FAILURE}) AS failures,
                    count(*) FILTER (WHERE {SUCCESS}) AS successes, min(occurred_at) AS first_at
             FROM (SELECT event_type, occurred_at,
                          coalesce(metadata->>'release', metadata->>'version') AS release
                   FROM events
                   WHERE tenant_id = $1 AND workflow_id = $2 AND step IS NOT DISTINCT FROM $3
                     AND occurred_at >= $4 AND occurred_at <= $5) e
             WHERE release IS NOT NULL
             GROUP BY release ORDER BY min(occurred_at), release LIMIT 20"
        );
        let rows: Vec<ReleaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(i.tenant_id)
            .bind(&i.workflow_id)
            .bind(&i.step)
            .bind(i.first_seen - secs(lookback))
            .bind(i.last_seen)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| ReleaseFacts {
                release: r.release,
                failures: r.failures,
                successes: r.successes,
                first_at: r.first_at,
            })
            .collect())
    }
}
