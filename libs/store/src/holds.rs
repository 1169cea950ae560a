//! Held retries: `hold` actions waiting, `PENDING`, for their vendor's
//! breaker to let retries through again. Each ends released (`SUCCEEDED`,
//! with the retry it held recorded beside it), escalated (`FAILED`, with the
//! escalation) or cancelled when its incident resolves. A hold has passed
//! its tenant's mode already (a retry waits for approval before it meets the
//! breaker), so only a tenant's pause keeps it from release: an operator's
//! pause must not be bypassed by a breaker closing.

use awfdrs_domain::ActionStatus;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::states::StateColumn;
use crate::{Store, StoreError, Work};

/// A held retry, with what its release or escalation needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HeldRetry {
    /// The hold action's id.
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The tenant's slug.
    pub tenant: String,
    pub incident_id: Uuid,
    /// The retry attempt it holds.
    pub attempt: i32,
    pub vendor: String,
    pub workflow_id: String,
    pub workflow_run_id: Option<String>,
    pub step: Option<String>,
    pub idempotency_key: Option<String>,
    pub correlation_id: String,
    /// The decision that made the hold, as published (`DecisionV1`).
    pub decision: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// Which holds may go: those of tenants not paused.
const RELEASABLE: &str =
    "a.kind = 'hold' AND a.status = $1 AND NOT a.shadow AND a.vendor IS NOT NULL
     AND NOT coalesce(m.paused, false)";

impl Store {
    /// The vendors that have held retries waiting for release, by name.
    ///
    /// # Errors
    /// On database failure.
    pub async fn held_vendors(&self) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT DISTINCT a.vendor FROM actions a
             LEFT JOIN tenant_modes m ON m.tenant_id = a.tenant_id
             WHERE {RELEASABLE} ORDER BY a.vendor"
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(StateColumn(ActionStatus::Pending))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Up to `limit` held retries of `vendor`, oldest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn held_retries(
        &self,
        vendor: &str,
        limit: i64,
    ) -> Result<Vec<HeldRetry>, StoreError> {
        let sql = format!(
            "SELECT a.id, a.tenant_id, t.slug AS tenant, a.incident_id, a.attempt, a.vendor,
                    a.workflow_id, a.workflow_run_id, a.step, a.idempotency_key,
                    a.correlation_id, d.body AS decision, a.created_at
             FROM actions a
             JOIN tenants t ON t.id = a.tenant_id
             LEFT JOIN decisions d ON d.id = coalesce(a.decision_id,
                 (SELECT r.decision_id FROM actions r
                  WHERE r.incident_id = a.incident_id AND r.kind = 'retry'
                    AND r.attempt = a.attempt))
             LEFT JOIN tenant_modes m ON m.tenant_id = a.tenant_id
             WHERE {RELEASABLE} AND a.vendor = $2
             ORDER BY a.created_at, a.id
             LIMIT $3"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(StateColumn(ActionStatus::Pending))
            .bind(vendor)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}

impl Work {
    /// Ends `hold` as `to` (`SUCCEEDED` released, `FAILED` escalated) with
    /// its timeline entry by `actor`, if it is still `PENDING`; the row stays
    /// locked until this transaction ends, so competing releasers end it
    /// once. Returns whether this transaction ended it.
    ///
    /// # Errors
    /// On database failure.
    pub async fn end_hold(
        &mut self,
        hold: &HeldRetry,
        to: ActionStatus,
        actor: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let ended: Option<Uuid> = sqlx::query_scalar(
            "UPDATE actions SET status = $4, updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND kind = 'hold' AND status = $3
             RETURNING id",
        )
        .bind(hold.tenant_id)
        .bind(hold.id)
        .bind(StateColumn(ActionStatus::Pending))
        .bind(StateColumn(to))
        .fetch_optional(self.conn())
        .await?;
        if ended.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO action_transitions (tenant_id, action_id, from_status, to_status, actor, reason)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hold.tenant_id)
        .bind(hold.id)
        .bind(StateColumn(ActionStatus::Pending))
        .bind(StateColumn(to))
        .bind(actor)
        .bind(reason)
        .execute(self.conn())
        .await?;
        if to != ActionStatus::Succeeded {
            // An approved or resumed retry that waited for this hold ends with it.
            crate::approvals::cancel_waiting_on_hold(
                self.conn(),
                hold.tenant_id,
                hold.incident_id,
                hold.attempt,
                actor,
                reason,
            )
            .await?;
        }
        Ok(true)
    }
}
