//! Retries that wait for an operator: for an approval (`approve` mode), for
//! the end of a pause, or (once approved or resumed) for the hold the
//! vendor's breaker put them in. An operator approves one; the coordinator
//! then moves each retry that waits for nothing more on, oldest first: it
//! becomes `SCHEDULED`, a hold, or ends `FAILED` beside an escalation, in
//! one transaction that the retry's `PENDING` row makes happen once.

use awfdrs_domain::ActionStatus;
use awfdrs_domain::decision::ActionKind;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::operate::ACTION_COLUMNS;
use crate::states::StateColumn;
use crate::{Action, NewAction, Store, StoreError, Work};

/// What a `PENDING` retry waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingFor {
    /// An operator's approval, and the end of any pause.
    Approval,
    /// The end of the tenant's or every tenant's pause.
    Pause,
    /// Its hold's release (the vendor's breaker stopped it once it could go).
    Hold,
}

impl WaitingFor {
    /// The name the `actions.waiting_for` column holds.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            WaitingFor::Approval => "approval",
            WaitingFor::Pause => "pause",
            WaitingFor::Hold => "hold",
        }
    }
}

/// A waiting retry that may go on now: approved, or resumed after a pause.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WaitingRetry {
    /// The retry action's id.
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The tenant's slug.
    pub tenant: String,
    pub incident_id: Uuid,
    pub attempt: i32,
    pub vendor: Option<String>,
    pub workflow_id: String,
    pub workflow_run_id: Option<String>,
    pub step: Option<String>,
    pub idempotency_key: Option<String>,
    pub correlation_id: String,
    /// When its policy let it go (it goes no earlier).
    pub due_at: Option<DateTime<Utc>>,
    /// `approval` or `pause`.
    pub waiting_for: String,
    /// Who approved it, for one that waited for approval.
    pub approved_by: Option<String>,
    /// The decision that made it, as published (`DecisionV1`).
    pub decision: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// What approving an action reads of it.
#[derive(sqlx::FromRow)]
struct Approvable {
    tenant_id: Uuid,
    status: StateColumn<ActionStatus>,
    waiting_for: Option<String>,
    approved_by: Option<String>,
}

impl Store {
    /// Approves retry `id` (of `tenant`, None for any) by `by`, if it waits
    /// for approval; approving an approved retry that has not moved on
    /// changes nothing.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such action;
    /// [`StoreError::Conflict`] when it does not wait for approval; on
    /// database failure.
    pub async fn approve_action(
        &self,
        tenant: Option<Uuid>,
        id: Uuid,
        by: &str,
    ) -> Result<Action, StoreError> {
        let mut tx = self.pool.begin().await?;
        let old: Option<Approvable> = sqlx::query_as(
            "SELECT tenant_id, status, waiting_for, approved_by FROM actions
             WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) FOR UPDATE",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(Approvable {
            tenant_id,
            status: StateColumn(status),
            waiting_for: waiting,
            approved_by: approved,
        }) = old
        else {
            return Err(StoreError::NotFound);
        };
        if status != ActionStatus::Pending || waiting.as_deref() != Some("approval") {
            let what = waiting.map_or_else(String::new, |w| format!(", waiting for {w}"));
            return Err(StoreError::Conflict(format!(
                "the action is not waiting for approval ({status}{what})"
            )));
        }
        if approved.is_none() {
            sqlx::query(
                "UPDATE actions SET approved_by = $2, approved_at = now(), updated_at = now()
                 WHERE id = $1",
            )
            .bind(id)
            .bind(by)
            .execute(&mut *tx)
            .await?;
            transition(
                &mut tx,
                tenant_id,
                id,
                (ActionStatus::Pending, ActionStatus::Pending),
                by,
                "approved",
            )
            .await?;
        }
        let sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE id = $1");
        let action: Action = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(action)
    }

    /// Up to `limit` waiting retries that may go on, oldest first: approved
    /// ones and those that waited for a pause, of tenants not paused while
    /// every tenant is not paused either.
    ///
    /// # Errors
    /// On database failure.
    pub async fn ready_waiting_retries(&self, limit: i64) -> Result<Vec<WaitingRetry>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT a.id, a.tenant_id, t.slug AS tenant, a.incident_id, a.attempt, a.vendor,
                    a.workflow_id, a.workflow_run_id, a.step, a.idempotency_key,
                    a.correlation_id, a.due_at, a.waiting_for, a.approved_by,
                    d.body AS decision, a.created_at
             FROM actions a
             JOIN tenants t ON t.id = a.tenant_id
             LEFT JOIN decisions d ON d.id = a.decision_id
             LEFT JOIN tenant_modes m ON m.tenant_id = a.tenant_id
             WHERE a.status = $1 AND a.kind = 'retry' AND NOT a.shadow
               AND (a.waiting_for = 'pause'
                    OR (a.waiting_for = 'approval' AND a.approved_by IS NOT NULL))
               AND NOT coalesce(m.paused, false)
               AND NOT coalesce((SELECT paused FROM remediation_pause WHERE singleton), false)
             ORDER BY a.created_at, a.id
             LIMIT $2",
        )
        .bind(StateColumn(ActionStatus::Pending))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl Work {
    /// Marks the `PENDING` retry `id` this transaction recorded as waiting
    /// for `what`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn mark_waiting(
        &mut self,
        tenant: Uuid,
        id: Uuid,
        what: WaitingFor,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE actions SET waiting_for = $3
             WHERE tenant_id = $1 AND id = $2 AND status = $4 AND kind = 'retry'",
        )
        .bind(tenant)
        .bind(id)
        .bind(what.as_str())
        .bind(StateColumn(ActionStatus::Pending))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Moves waiting retry `w` on to `SCHEDULED`, due at `due`, with its
    /// timeline entry by `actor` (its commit wakes the schedulers). Returns
    /// whether this transaction moved it: it may have been cancelled, or
    /// moved by another coordinator, since it was read.
    ///
    /// # Errors
    /// On database failure.
    pub async fn schedule_waiting(
        &mut self,
        w: &WaitingRetry,
        due: DateTime<Utc>,
        actor: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        if !self
            .end_wait(w, ActionStatus::Scheduled, Some(due), reason)
            .await?
        {
            return Ok(false);
        }
        notify_scheduled(self, due).await?;
        let from_to = (ActionStatus::Pending, ActionStatus::Scheduled);
        transition(self.conn(), w.tenant_id, w.id, from_to, actor, reason).await?;
        Ok(true)
    }

    /// Waiting retry `w` stopped by its vendor's breaker: it waits for
    /// `hold`, which this transaction records (carrying an approval, so the
    /// hold is released in `approve` mode too). Returns whether this
    /// transaction moved it.
    ///
    /// # Errors
    /// On database failure.
    pub async fn hold_waiting(
        &mut self,
        w: &WaitingRetry,
        hold: &NewAction,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let moved: Option<Uuid> = sqlx::query_scalar(
            "UPDATE actions SET waiting_for = 'hold', updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = $3 AND waiting_for = $4
             RETURNING id",
        )
        .bind(w.tenant_id)
        .bind(w.id)
        .bind(StateColumn(ActionStatus::Pending))
        .bind(&w.waiting_for)
        .fetch_optional(self.conn())
        .await?;
        if moved.is_none() {
            return Ok(false);
        }
        let pending = (ActionStatus::Pending, ActionStatus::Pending);
        transition(self.conn(), w.tenant_id, w.id, pending, actor, &hold.reason).await?;
        self.record_action(hold, actor).await?;
        if let Some(by) = &w.approved_by {
            sqlx::query("UPDATE actions SET approved_by = $2, approved_at = now() WHERE id = $1")
                .bind(hold.id)
                .bind(by)
                .execute(self.conn())
                .await?;
        }
        Ok(true)
    }

    /// Waiting retry `w` stopped by a hard limit: it ends `FAILED` and
    /// `escalation` is recorded beside it. Returns whether this transaction
    /// ended it.
    ///
    /// # Errors
    /// On database failure.
    pub async fn escalate_waiting(
        &mut self,
        w: &WaitingRetry,
        escalation: &NewAction,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let reason = format!("escalated: {}", escalation.reason);
        if !self
            .end_wait(w, ActionStatus::Failed, None, &reason)
            .await?
        {
            return Ok(false);
        }
        let from_to = (ActionStatus::Pending, ActionStatus::Failed);
        transition(self.conn(), w.tenant_id, w.id, from_to, actor, &reason).await?;
        // Made already (an earlier escalation of the incident): the retry still ends.
        self.record_action(escalation, actor).await?;
        Ok(true)
    }

    /// Ends `w`'s wait as `to` if it still waits as it did when read.
    async fn end_wait(
        &mut self,
        w: &WaitingRetry,
        to: ActionStatus,
        due: Option<DateTime<Utc>>,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let ended: Option<Uuid> = sqlx::query_scalar(
            "UPDATE actions SET status = $5, due_at = coalesce($6, due_at), reason = $7,
                                waiting_for = NULL, updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = $3 AND waiting_for = $4
             RETURNING id",
        )
        .bind(w.tenant_id)
        .bind(w.id)
        .bind(StateColumn(ActionStatus::Pending))
        .bind(&w.waiting_for)
        .bind(StateColumn(to))
        .bind(due)
        .bind(reason)
        .fetch_optional(self.conn())
        .await?;
        Ok(ended.is_some())
    }
}

/// The retry `a` (being recorded `SCHEDULED` by a hold's release) when it
/// already waits for that hold: it goes ahead as `a` says. Returns whether
/// it did.
pub(crate) async fn resume_held(
    work: &mut Work,
    a: &NewAction,
    actor: &str,
) -> Result<bool, StoreError> {
    if a.kind != ActionKind::Retry || a.status != ActionStatus::Scheduled || a.shadow {
        return Ok(false);
    }
    let resumed: Option<Uuid> = sqlx::query_scalar(
        "UPDATE actions SET status = $3, due_at = $4, reason = $5, waiting_for = NULL,
                            updated_at = now()
         WHERE id = $1 AND status = $2 AND waiting_for = 'hold'
         RETURNING id",
    )
    .bind(a.id)
    .bind(StateColumn(ActionStatus::Pending))
    .bind(StateColumn(ActionStatus::Scheduled))
    .bind(a.due_at)
    .bind(&a.reason)
    .fetch_optional(work.conn())
    .await?;
    if resumed.is_none() {
        return Ok(false);
    }
    if let Some(due) = a.due_at {
        notify_scheduled(work, due).await?;
    }
    let from_to = (ActionStatus::Pending, ActionStatus::Scheduled);
    transition(work.conn(), a.tenant_id, a.id, from_to, actor, &a.reason).await?;
    Ok(true)
}

/// Cancels the retry of `incident`'s `attempt` that waits for its hold,
/// when the hold ends without a release (escalated).
pub(crate) async fn cancel_waiting_on_hold(
    conn: &mut sqlx::PgConnection,
    tenant: Uuid,
    incident: Uuid,
    attempt: i32,
    actor: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let cancelled: Option<Uuid> = sqlx::query_scalar(
        "UPDATE actions SET status = $5, waiting_for = NULL, updated_at = now()
         WHERE tenant_id = $1 AND incident_id = $2 AND kind = 'retry' AND attempt = $3
           AND status = $4 AND waiting_for = 'hold'
         RETURNING id",
    )
    .bind(tenant)
    .bind(incident)
    .bind(attempt)
    .bind(StateColumn(ActionStatus::Pending))
    .bind(StateColumn(ActionStatus::Cancelled))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = cancelled {
        let from_to = (ActionStatus::Pending, ActionStatus::Cancelled);
        transition(conn, tenant, id, from_to, actor, reason).await?;
    }
    Ok(())
}

/// Wakes a sleeping scheduler for a retry due at `due` (on commit).
async fn notify_scheduled(work: &mut Work, due: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(crate::RETRIES_CHANNEL)
        .bind(due.to_rfc3339())
        .execute(work.conn())
        .await?;
    Ok(())
}

/// One row of an action's timeline.
async fn transition(
    conn: &mut sqlx::PgConnection,
    tenant: Uuid,
    id: Uuid,
    (from, to): (ActionStatus, ActionStatus),
    actor: &str,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO action_transitions (tenant_id, action_id, from_status, to_status, actor, reason)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(id)
    .bind(StateColumn(from))
    .bind(StateColumn(to))
    .bind(actor)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}
