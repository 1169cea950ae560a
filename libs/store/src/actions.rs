//! Actions: recorded once per decision (and per incident, kind and
//! attempt), with their timeline; the incident's move to `ACTIONED`.

use awfdrs_domain::decision::ActionKind;
use awfdrs_domain::{ActionStatus, IncidentStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::states::StateColumn;
use crate::{Store, StoreError, Work};

/// The PostgreSQL notification channel a scheduled retry is announced on.
pub const RETRIES_CHANNEL: &str = "awfdrs_retries";

/// An action to record.
#[derive(Debug, Clone)]
pub struct NewAction {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub incident_id: Uuid,
    /// `None` for an action a released hold makes.
    pub decision_id: Option<Uuid>,
    pub kind: ActionKind,
    pub status: ActionStatus,
    pub attempt: i32,
    pub shadow: bool,
    pub due_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub limit_key: Option<String>,
    pub vendor: Option<String>,
    pub workflow_id: String,
    pub workflow_run_id: Option<String>,
    pub step: Option<String>,
    pub idempotency_key: Option<String>,
    pub correlation_id: String,
}

/// An action as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Action {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub incident_id: Uuid,
    /// `None` for an action a released hold makes.
    pub decision_id: Option<Uuid>,
    pub kind: String,
    #[sqlx(try_from = "StateColumn<ActionStatus>")]
    pub status: ActionStatus,
    pub attempt: i32,
    pub shadow: bool,
    pub due_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub limit_key: Option<String>,
    pub vendor: Option<String>,
    /// What a `PENDING` retry waits for: `approval`, `pause` or `hold`.
    pub waiting_for: Option<String>,
    /// The operator who approved it, and when.
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A retry's delivery to its workflow's HTTP callback: `status`,
    /// `tries`, `last_status_code`, `last_error`, `delivered_at`,
    /// `next_try_at`; `null` when it has none.
    #[sqlx(default)]
    pub callback: Option<serde_json::Value>,
}

impl Work {
    /// Records `action` with its first timeline entry by `actor`, unless its
    /// decision already made an action or its (incident, kind, attempt)
    /// exists. Returns whether this transaction recorded it.
    ///
    /// # Errors
    /// On database failure.
    pub async fn record_action(&mut self, a: &NewAction, actor: &str) -> Result<bool, StoreError> {
        let recorded: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO actions (id, tenant_id, incident_id, decision_id, kind, status, attempt,
                                  shadow, due_at, reason, limit_key, vendor, workflow_id, correlation_id,
                                  workflow_run_id, step, idempotency_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .bind(a.id)
        .bind(a.tenant_id)
        .bind(a.incident_id)
        .bind(a.decision_id)
        .bind(a.kind.as_str())
        .bind(StateColumn(a.status))
        .bind(a.attempt)
        .bind(a.shadow)
        .bind(a.due_at)
        .bind(&a.reason)
        .bind(&a.limit_key)
        .bind(&a.vendor)
        .bind(&a.workflow_id)
        .bind(&a.correlation_id)
        .bind(&a.workflow_run_id)
        .bind(&a.step)
        .bind(&a.idempotency_key)
        .fetch_optional(self.conn())
        .await?;
        if recorded.is_none() {
            // A retry released from its hold that already waits, approved or
            // resumed, for that hold: it goes ahead instead.
            return crate::approvals::resume_held(self, a, actor).await;
        }
        if a.status == ActionStatus::Scheduled && !a.shadow {
            // Wakes a sleeping scheduler when this retry is nearer than
            // what it waits for (delivered on commit).
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(RETRIES_CHANNEL)
                .bind(a.due_at.map(|d| d.to_rfc3339()).unwrap_or_default())
                .execute(self.conn())
                .await?;
        }
        sqlx::query(
            "INSERT INTO action_transitions (tenant_id, action_id, from_status, to_status, actor, reason)
             VALUES ($1, $2, NULL, $3, $4, $5)",
        )
        .bind(a.tenant_id)
        .bind(a.id)
        .bind(StateColumn(a.status))
        .bind(actor)
        .bind(&a.reason)
        .execute(self.conn())
        .await?;
        Ok(true)
    }

    /// Moves a `NEW` or `ANALYZING` incident to `ACTIONED`, with a timeline
    /// entry by `actor` for `reason`. Returns whether it moved.
    ///
    /// # Errors
    /// On database failure.
    pub async fn mark_actioned(
        &mut self,
        tenant: Uuid,
        incident: Uuid,
        actor: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let before: Option<StateColumn<IncidentStatus>> = sqlx::query_scalar(
            "WITH old AS (SELECT id, status FROM incidents
                          WHERE tenant_id = $1 AND id = $2 AND status IN ($4, $5) FOR UPDATE)
             UPDATE incidents i SET status = $3, actioned_at = now(), updated_at = now()
             FROM old WHERE i.id = old.id
             RETURNING old.status",
        )
        .bind(tenant)
        .bind(incident)
        .bind(StateColumn(IncidentStatus::Actioned))
        .bind(StateColumn(IncidentStatus::New))
        .bind(StateColumn(IncidentStatus::Analyzing))
        .fetch_optional(self.conn())
        .await?;
        let Some(before) = before else {
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO incident_transitions (tenant_id, incident_id, from_status, to_status, actor, reason)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant)
        .bind(incident)
        .bind(before)
        .bind(StateColumn(IncidentStatus::Actioned))
        .bind(actor)
        .bind(reason)
        .execute(self.conn())
        .await?;
        Ok(true)
    }
}

impl Store {
    /// The next retry attempt of `incident`: one more than its latest.
    ///
    /// # Errors
    /// On database failure.
    pub async fn next_attempt(&self, tenant: Uuid, incident: Uuid) -> Result<i32, StoreError> {
        let latest: Option<i32> = sqlx::query_scalar(
            "SELECT max(attempt) FROM actions
             WHERE tenant_id = $1 AND incident_id = $2 AND kind = 'retry'",
        )
        .bind(tenant)
        .bind(incident)
        .fetch_one(&self.pool)
        .await?;
        Ok(latest.unwrap_or(0) + 1)
    }

    /// Whether `incident` has a retry waiting (held, for approval or a
    /// pause: `PENDING`), due (`SCHEDULED`) or in flight (`EXECUTING`),
    /// shadow ones aside.
    ///
    /// # Errors
    /// On database failure.
    pub async fn retry_in_progress(
        &self,
        tenant: Uuid,
        incident: Uuid,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM actions
                            WHERE tenant_id = $1 AND incident_id = $2 AND NOT shadow
                              AND kind IN ('hold', 'retry') AND status IN ($3, $4, $5))",
        )
        .bind(tenant)
        .bind(incident)
        .bind(StateColumn(ActionStatus::Pending))
        .bind(StateColumn(ActionStatus::Scheduled))
        .bind(StateColumn(ActionStatus::Executing))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Whether `decision` already made an action.
    ///
    /// # Errors
    /// On database failure.
    pub async fn decision_acted_on(&self, decision: Uuid) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM actions WHERE decision_id = $1)")
                .bind(decision)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The actions about `incident`, oldest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn actions(
        &self,
        tenant: Option<Uuid>,
        incident: Uuid,
    ) -> Result<Vec<Action>, StoreError> {
        let sql = format!(
            "SELECT id, tenant_id, incident_id, decision_id, kind, status, attempt, shadow, due_at,
                    reason, limit_key, vendor, waiting_for, approved_by, approved_at,
                    created_at, updated_at, {}
             FROM actions WHERE incident_id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)
             ORDER BY created_at, id",
            crate::callbacks::CALLBACK_COLUMN
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(incident)
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?)
    }
}

/// Closes the actions of incidents that just resolved: anything still
/// waiting (`PENDING`, `SCHEDULED`) is cancelled, and when the workflow
/// `recovered` (successes resolved it) a fired retry (`EXECUTING`)
/// succeeded, its reason saying how long after the incident's first failure
/// the workflow recovered. Each change gets its timeline entry by `actor`. Shadow
/// actions stay as recorded.
pub(crate) async fn close_for_resolved(
    tx: &mut sqlx::PgConnection,
    incidents: &[Uuid],
    actor: &str,
    recovered: bool,
) -> Result<(), StoreError> {
    if incidents.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH old AS (
             SELECT a.id, a.status,
                    'the workflow recovered after the retry, '
                      || round(extract(epoch FROM now() - i.first_seen)::numeric, 1)
                      || ' s after the first failure' AS recovery
             FROM actions a JOIN incidents i ON i.id = a.incident_id
             WHERE a.incident_id = ANY($1) AND NOT a.shadow
               AND (a.status IN ($3, $6) OR ($8 AND a.status = $2))
             ORDER BY a.id FOR UPDATE OF a
         ), changed AS (
             UPDATE actions a
             SET status = CASE WHEN a.status = $2 THEN $4 ELSE $5 END,
                 reason = CASE WHEN a.status = $2 THEN old.recovery ELSE a.reason END,
                 updated_at = now()
             FROM old
             WHERE a.id = old.id
             RETURNING a.tenant_id, a.id, old.status AS from_status, a.status AS to_status,
                       old.recovery
         )
         INSERT INTO action_transitions (tenant_id, action_id, from_status, to_status, actor, reason)
         SELECT tenant_id, id, from_status, to_status, $7,
                CASE WHEN to_status = $4 THEN recovery ELSE 'the incident resolved' END
         FROM changed",
    )
    .bind(incidents)
    .bind(StateColumn(ActionStatus::Executing))
    .bind(StateColumn(ActionStatus::Scheduled))
    .bind(StateColumn(ActionStatus::Succeeded))
    .bind(StateColumn(ActionStatus::Cancelled))
    .bind(StateColumn(ActionStatus::Pending))
    .bind(actor)
    .bind(recovered)
    .execute(tx)
    .await?;
    Ok(())
}

impl Store {
    /// Resolves `incident` (of `tenant`, None for any) by an operator
    /// (`by`), cancelling what its actions still wait for. Returns whether
    /// it changed: resolving a resolved incident changes nothing.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such incident; on database
    /// failure.
    pub async fn resolve_incident(
        &self,
        tenant: Option<Uuid>,
        incident: Uuid,
        by: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let old: Option<(Uuid, StateColumn<IncidentStatus>)> = sqlx::query_as(
            "SELECT tenant_id, status FROM incidents
             WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) FOR UPDATE",
        )
        .bind(incident)
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((tenant_id, StateColumn(before))) = old else {
            return Err(StoreError::NotFound);
        };
        if before == IncidentStatus::Resolved {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE incidents SET status = $2, resolved_at = now(), resolved_by = $3, updated_at = now()
             WHERE id = $1",
        )
        .bind(incident)
        .bind(StateColumn(IncidentStatus::Resolved))
        .bind(by)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO incident_transitions (tenant_id, incident_id, from_status, to_status, actor, reason)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant_id)
        .bind(incident)
        .bind(StateColumn(before))
        .bind(StateColumn(IncidentStatus::Resolved))
        .bind(by)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        close_for_resolved(&mut tx, &[incident], by, false).await?;
        tx.commit().await?;
        Ok(true)
    }
}
