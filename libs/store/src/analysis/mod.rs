//! The facts one analysis reads, gathered from the tenant's events and
//! incidents. Facts about other tenants are aggregates only: the queries
//! count them and return nothing else of theirs.

use awfdrs_analysis::{FailureSignals, IncidentFacts, StepHistory, VendorFacts};
use awfdrs_domain::decision::{RuleRef, SignatureInputs};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::{Store, StoreError};

mod history;
mod vendor;

/// Where the re-open window is set (the incident rules' setting).
pub const REOPEN_WINDOW_RULE: (&str, &str) = ("awfdrs.yaml", "detector.reopen_window_secs");

/// Events that count as a success of their step.
pub(super) const SUCCESS: &str = "event_type IN ('step_succeeded', 'workflow_succeeded')";
/// Events that count as a failure.
pub(super) const FAILURE: &str = "event_type IN ('step_failed', 'workflow_failed')";

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
    /// The attempt of the retry that succeeded before it auto-resolved.
    pub resolved_by_retry: Option<i32>,
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
pub(super) struct IncidentRow {
    pub(super) id: Uuid,
    pub(super) tenant_id: Uuid,
    pub(super) tenant: String,
    pub(super) signature: String,
    pub(super) workflow_id: String,
    pub(super) error_code: String,
    pub(super) error_code_raw: Option<String>,
    pub(super) vendor: Option<String>,
    pub(super) step: Option<String>,
    pub(super) status: String,
    pub(super) event_count: i64,
    pub(super) first_seen: DateTime<Utc>,
    pub(super) last_seen: DateTime<Utc>,
    pub(super) reopen_count: i32,
    pub(super) open_after_rule: Option<String>,
}

#[derive(sqlx::FromRow)]
struct LatestRow {
    error_message: Option<String>,
    correlation_id: String,
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
                    first_seen, resolved_at, resolved_by,
                    (SELECT max(a.attempt) FROM actions a
                       WHERE a.tenant_id = incidents.tenant_id AND a.incident_id = incidents.id
                       AND a.kind = 'retry' AND a.status = 'SUCCEEDED') AS resolved_by_retry
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

    /// The tenant's latest incidents of the same signature and of the same
    /// vendor, at most `limit` of each.
    async fn past_candidates(
        &self,
        i: &IncidentRow,
        limit: i64,
    ) -> Result<Vec<PastIncidentRow>, StoreError> {
        let rows: Vec<PastIncidentRow> = sqlx::query_as(
            "(SELECT id, signature, workflow_id, error_code, vendor, message_vector, status,
                     first_seen, resolved_at, resolved_by,
                    (SELECT max(a.attempt) FROM actions a
                       WHERE a.tenant_id = incidents.tenant_id AND a.incident_id = incidents.id
                       AND a.kind = 'retry' AND a.status = 'SUCCEEDED') AS resolved_by_retry
              FROM incidents WHERE tenant_id = $1 AND signature = $2 AND id <> $3
              ORDER BY first_seen DESC LIMIT $5)
             UNION
             (SELECT id, signature, workflow_id, error_code, vendor, message_vector, status,
                     first_seen, resolved_at, resolved_by,
                    (SELECT max(a.attempt) FROM actions a
                       WHERE a.tenant_id = incidents.tenant_id AND a.incident_id = incidents.id
                       AND a.kind = 'retry' AND a.status = 'SUCCEEDED') AS resolved_by_retry
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

pub(super) fn secs(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}
