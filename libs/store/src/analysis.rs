//! The facts one analysis reads, gathered from the tenant's events and
//! incidents. Facts about other tenants are aggregates only: the queries
//! count them and return nothing else of theirs.

use awfdrs_analysis::{
    FailureSignals, IncidentFacts, ReleaseFacts, StatusCount, StepHistory, VendorFacts,
};
use awfdrs_domain::decision::{RuleRef, SignatureInputs};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::{Store, StoreError};

/// Where the re-open window is set (the incident rules' setting).
pub const REOPEN_WINDOW_RULE: (&str, &str) = ("awfdrs.yaml", "detector.reopen_window_secs");

/// Events that count as a success of their step.
const SUCCESS: &str = "event_type IN ('step_succeeded', 'workflow_succeeded')";
/// Events that count as a failure.
const FAILURE: &str = "event_type IN ('step_failed', 'workflow_failed')";

/// How far the facts reach.
#[derive(Debug, Clone, Copy)]
pub struct FactWindows {
    /// The vendor's window, ending at the incident's last failure.
    pub vendor_secs: u64,
    /// How far back the step's history and releases are read.
    pub lookback_secs: u64,
    /// Past incidents read per kind of candidate.
    pub candidates: i64,
}

/// One of the tenant's earlier incidents, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PastIncidentRow {
    pub id: Uuid,
    pub signature: String,
    pub workflow_id: String,
    pub error_code: String,
    pub vendor: Option<String>,
    pub message_vector: Option<Vec<f32>>,
    pub status: String,
    pub first_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
}

/// What the store knows about one incident for its analysis.
#[derive(Debug, Clone)]
pub struct AnalysisFacts {
    pub incident: IncidentFacts,
    /// `NEW`, `ANALYZING`, `ACTIONED` or `RESOLVED`.
    pub status: String,
    pub failures: FailureSignals,
    pub step: StepHistory,
    /// None when the incident names no vendor. Its breaker is not a
    /// database fact: the caller adds it.
    pub vendor: Option<VendorFacts>,
    /// Candidates for similar incidents (not this one), deduplicated.
    pub past: Vec<PastIncidentRow>,
}

#[derive(sqlx::FromRow)]
struct IncidentRow {
    id: Uuid,
    tenant_id: Uuid,
    tenant: String,
    signature: String,
    workflow_id: String,
    error_code: String,
    error_code_raw: Option<String>,
    vendor: Option<String>,
    step: Option<String>,
    status: String,
    event_count: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    reopen_count: i32,
    open_after_rule: Option<String>,
}

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
struct LatestRow {
    error_message: Option<String>,
    correlation_id: String,
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

#[derive(sqlx::FromRow)]
struct VendorRow {
    calls: i64,
    failures: i64,
    successes_elsewhere: i64,
    other_tenants_failing: i64,
    other_failures: i64,
    other_successes: i64,
    other_same_code: i64,
}

impl IncidentRow {
    fn signature_inputs(&self) -> SignatureInputs {
        SignatureInputs {
            tenant: self.tenant.clone(),
            workflow_id: self.workflow_id.clone(),
            error_code_raw: self
                .error_code_raw
                .clone()
                .unwrap_or_else(|| self.error_code.clone()),
            error_code: self.error_code.clone(),
            vendor: self.vendor.clone(),
            step: self.step.clone(),
            open_after: self.open_after_rule.clone().map(|key| RuleRef {
                file: "error_codes.yaml".to_owned(),
                key,
            }),
            reopen_window: RuleRef {
                file: REOPEN_WINDOW_RULE.0.to_owned(),
                key: REOPEN_WINDOW_RULE.1.to_owned(),
            },
        }
    }
}

impl Store {
    /// Why `incident` groups what it groups: its signature's inputs and the
    /// rules that shaped its opening. None when there is no such incident
    /// (of `tenant`, None for any).
    ///
    /// # Errors
    /// On database failure.
    pub async fn signature_inputs(
        &self,
        tenant: Option<Uuid>,
        incident: Uuid,
    ) -> Result<Option<SignatureInputs>, StoreError> {
        Ok(self
            .incident_row(tenant, incident)
            .await?
            .map(|i| i.signature_inputs()))
    }

    /// The facts about `incident` (of `tenant`, None for any), or None when
    /// there is no such incident.
    ///
    /// # Errors
    /// On database failure.
    pub async fn analysis_facts(
        &self,
        tenant: Option<Uuid>,
        incident: Uuid,
        windows: FactWindows,
    ) -> Result<Option<AnalysisFacts>, StoreError> {
        let Some(i) = self.incident_row(tenant, incident).await? else {
            return Ok(None);
        };
        let failures = self.failure_signals(&i).await?;
        let latest: Option<LatestRow> = sqlx::query_as(
            "SELECT error_message, correlation_id FROM events
             WHERE tenant_id = $1 AND signature = $2 AND occurred_at >= $3
             ORDER BY occurred_at DESC, id DESC LIMIT 1",
        )
        .bind(i.tenant_id)
        .bind(&i.signature)
        .bind(i.first_seen)
        .fetch_optional(&self.pool)
        .await?;
        let step = self.step_history(&i, windows.lookback_secs).await?;
        let releases = self.releases(&i, windows.lookback_secs).await?;
        let vendor = match &i.vendor {
            Some(v) => Some(self.vendor_facts(&i, v, windows.vendor_secs).await?),
            None => None,
        };
        let past = self.past_candidates(&i, windows.candidates).await?;
        let (message, correlation_id) = latest.map_or((None, String::new()), |l| {
            (l.error_message, l.correlation_id)
        });
        Ok(Some(AnalysisFacts {
            incident: IncidentFacts {
                id: i.id,
                tenant_id: i.tenant_id,
                signature: i.signature.clone(),
                inputs: SignatureInputs {
                    tenant: i.tenant.clone(),
                    workflow_id: i.workflow_id.clone(),
                    error_code_raw: i
                        .error_code_raw
                        .clone()
                        .unwrap_or_else(|| i.error_code.clone()),
                    error_code: i.error_code.clone(),
                    vendor: i.vendor.clone(),
                    step: i.step.clone(),
                    open_after: i.open_after_rule.clone().map(|key| RuleRef {
                        file: "error_codes.yaml".to_owned(),
                        key,
                    }),
                    reopen_window: RuleRef {
                        file: REOPEN_WINDOW_RULE.0.to_owned(),
                        key: REOPEN_WINDOW_RULE.1.to_owned(),
                    },
                },
                event_count: i.event_count,
                first_seen: i.first_seen,
                last_seen: i.last_seen,
                reopen_count: i.reopen_count,
                message,
                correlation_id,
            },
            status: i.status.clone(),
            failures: FailureSignals {
                releases,
                ..failures
            },
            step,
            vendor,
            past,
        }))
    }

    /// Past incidents whose message shares an LSH key with `keys`, besides
    /// those of the same signature and vendor: the candidates for similar
    /// incidents once the new incident's message vector is known.
    ///
    /// # Errors
    /// On database failure.
    pub async fn similar_candidates(
        &self,
        tenant: Uuid,
        incident: Uuid,
        keys: &[i32],
        limit: i64,
    ) -> Result<Vec<PastIncidentRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, signature, workflow_id, error_code, vendor, message_vector, status,
                    first_seen, resolved_at, resolved_by
             FROM incidents
             WHERE tenant_id = $1 AND id <> $2 AND message_lsh && $3
             ORDER BY first_seen DESC, id DESC LIMIT $4",
        )
        .bind(tenant)
        .bind(incident)
        .bind(keys)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn incident_row(
        &self,
        tenant: Option<Uuid>,
        incident: Uuid,
    ) -> Result<Option<IncidentRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT i.id, i.tenant_id, t.slug AS tenant, i.signature, i.workflow_id, i.error_code,
                    i.error_code_raw, i.vendor, i.step, i.status, i.event_count, i.first_seen,
                    i.last_seen, i.reopen_count, i.open_after_rule
             FROM incidents i JOIN tenants t ON t.id = i.tenant_id
             WHERE i.id = $1 AND ($2::uuid IS NULL OR i.tenant_id = $2)",
        )
        .bind(incident)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn failure_signals(&self, i: &IncidentRow) -> Result<FailureSignals, StoreError> {
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

    async fn step_history(
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

    async fn releases(
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

    async fn vendor_facts(
        &self,
        i: &IncidentRow,
        vendor: &str,
        window: u64,
    ) -> Result<VendorFacts, StoreError> {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE tenant_id = $1) AS calls,
                    count(*) FILTER (WHERE tenant_id = $1 AND {FAILURE}) AS failures,
                    count(*) FILTER (WHERE tenant_id = $1 AND {SUCCESS}
                        AND (workflow_id <> $2 OR step IS DISTINCT FROM $3)) AS successes_elsewhere,
                    count(DISTINCT tenant_id) FILTER (WHERE tenant_id <> $1 AND {FAILURE})
                        AS other_tenants_failing,
                    count(*) FILTER (WHERE tenant_id <> $1 AND {FAILURE}) AS other_failures,
                    count(*) FILTER (WHERE tenant_id <> $1 AND {SUCCESS}) AS other_successes,
                    count(DISTINCT tenant_id) FILTER (WHERE tenant_id <> $1 AND error_code = $4)
                        AS other_same_code
             FROM events
             WHERE vendor = $5 AND occurred_at > $6 AND occurred_at <= $7"
        );
        let from = i.last_seen - secs(window);
        let row: VendorRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(i.tenant_id)
            .bind(&i.workflow_id)
            .bind(&i.step)
            .bind(&i.error_code)
            .bind(vendor)
            .bind(from)
            .bind(i.last_seen)
            .fetch_one(&self.pool)
            .await?;
        let sql = format!(
            "SELECT DISTINCT workflow_id FROM events
             WHERE vendor = $1 AND tenant_id = $2 AND {FAILURE}
               AND occurred_at > $3 AND occurred_at <= $4
             ORDER BY 1 LIMIT 20"
        );
        let workflows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(vendor)
            .bind(i.tenant_id)
            .bind(from)
            .bind(i.last_seen)
            .fetch_all(&self.pool)
            .await?;
        Ok(VendorFacts {
            vendor: vendor.to_owned(),
            window_secs: window,
            breaker: None,
            tenant_workflows_failing: workflows,
            tenant_calls: row.calls,
            tenant_failures: row.failures,
            tenant_successes_elsewhere: row.successes_elsewhere,
            other_tenants_failing: row.other_tenants_failing,
            other_tenant_failures: row.other_failures,
            other_tenant_successes: row.other_successes,
            other_tenants_same_code: row.other_same_code,
        })
    }

    /// The tenant's latest incidents of the same signature and of the same
    /// vendor, at most `limit` of each.
    async fn past_candidates(
        &self,
        i: &IncidentRow,
        limit: i64,
    ) -> Result<Vec<PastIncidentRow>, StoreError> {
        let rows: Vec<PastIncidentRow> = sqlx::query_as(
            "(SELECT id, signature, workflow_id, error_code, vendor, message_vector, status,
                     first_seen, resolved_at, resolved_by
              FROM incidents WHERE tenant_id = $1 AND signature = $2 AND id <> $3
              ORDER BY first_seen DESC LIMIT $5)
             UNION
             (SELECT id, signature, workflow_id, error_code, vendor, message_vector, status,
                     first_seen, resolved_at, resolved_by
              FROM incidents WHERE tenant_id = $1 AND vendor = $4 AND id <> $3
              ORDER BY first_seen DESC LIMIT $5)",
        )
        .bind(i.tenant_id)
        .bind(&i.signature)
        .bind(i.id)
        .bind(&i.vendor)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}

fn secs(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}
