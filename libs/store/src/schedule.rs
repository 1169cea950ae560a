//! Due retries: durable rows that any number of schedulers share. A
//! scheduler claims due rows with `FOR UPDATE SKIP LOCKED` inside the
//! transaction that fires them (writes their command to the outbox and
//! marks them `EXECUTING`), so a scheduler that dies before its commit
//! leaves them due for another, and none is fired twice. While retries are
//! paused (the tenant's, or every tenant's), due ones wait.

use awfdrs_domain::ActionStatus;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::actions::RETRIES_CHANNEL;
use crate::states::StateColumn;
use crate::{Store, StoreError, Work};

/// A retry due now, claimed by this transaction.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueRetry {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The tenant's slug.
    pub tenant: String,
    pub incident_id: Uuid,
    pub workflow_id: String,
    pub workflow_run_id: Option<String>,
    pub step: Option<String>,
    pub vendor: Option<String>,
    pub attempt: i32,
    pub idempotency_key: Option<String>,
    pub correlation_id: String,
    pub due_at: DateTime<Utc>,
    /// How often it was deferred while its vendor's breaker was open.
    pub deferrals: i32,
}

impl Work {
    /// Claims up to `limit` retries due at `now`, oldest due first; other
    /// transactions skip them until this one ends.
    ///
    /// # Errors
    /// On database failure.
    pub async fn claim_due_retries(
        &mut self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DueRetry>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT a.id, a.tenant_id, t.slug AS tenant, a.incident_id, a.workflow_id,
                    a.workflow_run_id, a.step, a.vendor, a.attempt, a.idempotency_key,
                    a.correlation_id, a.due_at, a.deferrals
             FROM actions a JOIN tenants t ON t.id = a.tenant_id
             LEFT JOIN tenant_modes m ON m.tenant_id = a.tenant_id
             WHERE a.status = $1 AND NOT a.shadow AND a.due_at <= $2
               AND NOT coalesce(m.paused, false)
               AND NOT coalesce((SELECT paused FROM remediation_pause WHERE singleton), false)
             ORDER BY a.due_at, a.id
             LIMIT $3
             FOR UPDATE OF a SKIP LOCKED",
        )
        .bind(StateColumn(ActionStatus::Scheduled))
        .bind(now)
        .bind(limit)
        .fetch_all(self.conn())
        .await?)
    }

    /// Marks a claimed retry `EXECUTING` (fired at `now`), with its timeline
    /// entry by `actor`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn mark_fired(
        &mut self,
        retry: &DueRetry,
        now: DateTime<Utc>,
        actor: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE actions SET status = $3, fired_at = $4, updated_at = now()
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(retry.tenant_id)
        .bind(retry.id)
        .bind(StateColumn(ActionStatus::Executing))
        .bind(now)
        .execute(self.conn())
        .await?;
        sqlx::query(
            "INSERT INTO action_transitions (tenant_id, action_id, from_status, to_status, actor, reason)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(retry.tenant_id)
        .bind(retry.id)
        .bind(StateColumn(ActionStatus::Scheduled))
        .bind(StateColumn(ActionStatus::Executing))
        .bind(actor)
        .bind(reason)
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

impl Work {
    /// Leaves a claimed retry `SCHEDULED` but due again at `until`, with
    /// `reason` (its status does not change, so no timeline entry);
    /// `deferral` counts it as deferred by its vendor's breaker (not by
    /// its rate limit).
    ///
    /// # Errors
    /// On database failure.
    pub async fn defer_retry(
        &mut self,
        retry: &DueRetry,
        until: DateTime<Utc>,
        reason: &str,
        deferral: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE actions SET due_at = $3, reason = $4, updated_at = now(),
                                deferrals = deferrals + $5
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(retry.tenant_id)
        .bind(retry.id)
        .bind(until)
        .bind(reason)
        .bind(i32::from(deferral))
        .execute(self.conn())
        .await?;
        Ok(())
    }
}

impl Store {
    /// When the nearest scheduled retry that may fire is due, if any (none
    /// of a paused tenant's).
    ///
    /// # Errors
    /// On database failure.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT min(a.due_at) FROM actions a
             LEFT JOIN tenant_modes m ON m.tenant_id = a.tenant_id
             WHERE a.status = $1 AND NOT a.shadow
               AND NOT coalesce(m.paused, false)
               AND NOT coalesce((SELECT paused FROM remediation_pause WHERE singleton), false)",
        )
        .bind(StateColumn(ActionStatus::Scheduled))
        .fetch_one(&self.pool)
        .await?)
    }

    /// A listener woken whenever a retry is scheduled (on its commit).
    ///
    /// # Errors
    /// When the connection or the LISTEN fails.
    pub async fn listen_retries(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(RETRIES_CHANNEL).await?;
        Ok(listener)
    }

    /// The run, step and idempotency key of the incident's latest failure:
    /// what its retry retries.
    ///
    /// # Errors
    /// On database failure.
    pub async fn latest_failure(
        &self,
        tenant: Uuid,
        incident: Uuid,
    ) -> Result<Option<(Option<String>, Option<String>, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT e.workflow_run_id, e.step, e.idempotency_key
             FROM incidents i
             JOIN events e ON e.tenant_id = i.tenant_id AND e.signature = i.signature
                          AND e.occurred_at >= i.first_seen
             WHERE i.tenant_id = $1 AND i.id = $2
             ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1",
        )
        .bind(tenant)
        .bind(incident)
        .fetch_optional(&self.pool)
        .await?)
    }
}
