//! What operators do to actions and to remediation: list and cancel
//! actions, pause and resume automatic retries.

use awfdrs_domain::ActionStatus;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::callbacks::CALLBACK_COLUMN;
use crate::states::StateColumn;
use crate::{Action, Page, Store, StoreError};

/// Filters of an action list. `tenant` None means every tenant (admin).
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub tenant: Option<Uuid>,
    pub incident: Option<Uuid>,
    pub status: Option<ActionStatus>,
    /// `retry`, `escalate`, `hold` or `none`.
    pub kind: Option<String>,
    /// Keyset cursor: the (created_at, id) of the last row of the previous page.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

pub(crate) const ACTION_COLUMNS: &str =
    "id, tenant_id, incident_id, decision_id, kind, status, attempt, shadow,
    due_at, reason, limit_key, vendor, waiting_for, approved_by, approved_at, created_at, updated_at";

impl Store {
    /// Actions, newest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn list_actions(&self, f: &ActionFilter) -> Result<Page<Action>, StoreError> {
        let limit = f.limit.clamp(1, 500);
        let sql = format!(
            "SELECT {ACTION_COLUMNS}, {CALLBACK_COLUMN} FROM actions
             WHERE ($1::uuid IS NULL OR tenant_id = $1)
               AND ($2::uuid IS NULL OR incident_id = $2)
               AND ($3::text IS NULL OR status = $3)
               AND ($4::text IS NULL OR kind = $4)
               AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6))
             ORDER BY created_at DESC, id DESC LIMIT $7"
        );
        let mut items: Vec<Action> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(f.tenant)
            .bind(f.incident)
            .bind(f.status.map(StateColumn))
            .bind(f.kind.as_deref())
            .bind(f.after.map(|a| a.0))
            .bind(f.after.map(|a| a.1))
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let next = if items.len() as i64 > limit {
            items.truncate(usize::try_from(limit).unwrap_or(0));
            items.last().map(|a| (a.created_at, a.id))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Cancels action `id` (of `tenant`, None for any) by `by`, unless it
    /// has finished.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such action;
    /// [`StoreError::Conflict`] when it has already finished; on database
    /// failure.
    pub async fn cancel_action(
        &self,
        tenant: Option<Uuid>,
        id: Uuid,
        by: &str,
        reason: &str,
    ) -> Result<Action, StoreError> {
        let mut tx = self.pool.begin().await?;
        let old: Option<(Uuid, StateColumn<ActionStatus>)> = sqlx::query_as(
            "SELECT tenant_id, status FROM actions
             WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) FOR UPDATE",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((tenant_id, StateColumn(before))) = old else {
            return Err(StoreError::NotFound);
        };
        if before.is_final() {
            return Err(StoreError::Conflict(format!(
                "the action has already finished ({before})"
            )));
        }
        sqlx::query("UPDATE actions SET status = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(StateColumn(ActionStatus::Cancelled))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO action_transitions (tenant_id, action_id, from_status, to_status, actor, reason)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(StateColumn(before))
        .bind(StateColumn(ActionStatus::Cancelled))
        .bind(by)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        let sql = format!("SELECT {ACTION_COLUMNS}, {CALLBACK_COLUMN} FROM actions WHERE id = $1");
        let action: Action = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(action)
    }

    /// Pauses (or resumes) every automatic retry of every tenant, recorded
    /// with who and why.
    ///
    /// # Errors
    /// On database failure.
    pub async fn set_global_pause(
        &self,
        paused: bool,
        by: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO remediation_pause (singleton, paused, changed_by, reason)
             VALUES (true, $1, $2, $3)
             ON CONFLICT (singleton) DO UPDATE SET paused = EXCLUDED.paused,
                 changed_by = EXCLUDED.changed_by, reason = EXCLUDED.reason, changed_at = now()",
        )
        .bind(paused)
        .bind(by)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        wake_schedulers(&self.pool).await
    }

    /// Whether every automatic retry is paused.
    ///
    /// # Errors
    /// On database failure.
    pub async fn global_pause(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce((SELECT paused FROM remediation_pause WHERE singleton), false)",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}

/// Wakes the schedulers (after a resume, retries that waited are due).
pub(crate) async fn wake_schedulers(pool: &sqlx::PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, 'resumed')")
        .bind(crate::RETRIES_CHANNEL)
        .execute(pool)
        .await?;
    Ok(())
}
