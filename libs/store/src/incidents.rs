//! Reading incidents: lists with keyset pagination, and one incident with
//! its timeline.

use awfdrs_domain::IncidentStatus;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::states::StateColumn;
use crate::{Store, StoreError};

/// An incident as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Incident {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub signature: String,
    pub workflow_id: String,
    pub error_code: String,
    pub vendor: Option<String>,
    pub step: Option<String>,
    #[sqlx(try_from = "StateColumn<IncidentStatus>")]
    pub status: IncidentStatus,
    pub event_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub analyzing_at: Option<DateTime<Utc>>,
    pub actioned_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub reopen_count: i32,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub from_status: Option<IncidentStatus>,
    pub to_status: IncidentStatus,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub reason: String,
}

/// A transition as stored.
#[derive(sqlx::FromRow)]
struct TransitionRow {
    from_status: Option<StateColumn<IncidentStatus>>,
    to_status: StateColumn<IncidentStatus>,
    at: DateTime<Utc>,
    actor: String,
    reason: String,
}

impl From<TransitionRow> for Transition {
    fn from(r: TransitionRow) -> Self {
        Self {
            from_status: r.from_status.map(IncidentStatus::from),
            to_status: r.to_status.into(),
            at: r.at,
            actor: r.actor,
            reason: r.reason,
        }
    }
}

/// An incident with its timeline.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    pub timeline: Vec<Transition>,
    /// Who acknowledged it, and when (no further escalation level is told).
    #[serde(flatten)]
    pub acknowledgement: crate::Acknowledgement,
    /// Its notifications to the tenant's channels.
    pub notifications: Vec<crate::NotificationSummary>,
}

/// Filters of an incident list. `tenant` None means every tenant (admin).
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub tenant: Option<Uuid>,
    pub status: Option<IncidentStatus>,
    pub workflow_id: Option<String>,
    pub vendor: Option<String>,
    /// Keyset cursor: the (last_seen, id) of the last row of the previous page.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<(DateTime<Utc>, Uuid)>,
}

impl Store {
    /// Incidents, most recently seen first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn list_incidents(&self, f: &IncidentFilter) -> Result<Page<Incident>, StoreError> {
        let limit = f.limit.clamp(1, 500);
        let mut items: Vec<Incident> = sqlx::query_as(LIST_SQL)
            .bind(f.tenant)
            .bind(f.status.map(StateColumn))
            .bind(f.workflow_id.as_deref())
            .bind(f.vendor.as_deref())
            .bind(f.after.map(|a| a.0))
            .bind(f.after.map(|a| a.1))
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let next = if items.len() as i64 > limit {
            items.truncate(usize::try_from(limit).unwrap_or(0));
            items.last().map(|i| (i.last_seen, i.id))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// One incident with its timeline; `tenant` None means any tenant (admin).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when it does not exist or belongs to another
    /// tenant.
    pub async fn incident(
        &self,
        tenant: Option<Uuid>,
        id: Uuid,
    ) -> Result<IncidentDetail, StoreError> {
        let incident: Incident = sqlx::query_as(ONE_SQL)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let timeline: Vec<TransitionRow> = sqlx::query_as(
            "SELECT from_status, to_status, at, actor, reason FROM incident_transitions
             WHERE tenant_id = $1 AND incident_id = $2 ORDER BY id",
        )
        .bind(incident.tenant_id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let timeline = timeline.into_iter().map(Transition::from).collect();
        let notifications = self.incident_notifications(incident.tenant_id, id).await?;
        let acknowledgement = self.acknowledgement(incident.tenant_id, id).await?;
        Ok(IncidentDetail {
            incident,
            timeline,
            acknowledgement,
            notifications,
        })
    }

    /// The number of events persisted for a tenant (tests, benchmarks).
    ///
    /// # Errors
    /// On database failure.
    pub async fn event_count(&self, tenant: Uuid) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

const LIST_SQL: &str =
    "SELECT id, tenant_id, signature, workflow_id, error_code, vendor, step, status,
        event_count, first_seen, last_seen, created_at, updated_at, analyzing_at, actioned_at,
        resolved_at, resolved_by, reopen_count
     FROM incidents
     WHERE ($1::uuid IS NULL OR tenant_id = $1)
       AND ($2::text IS NULL OR status = $2)
       AND ($3::text IS NULL OR workflow_id = $3)
       AND ($4::text IS NULL OR vendor = $4)
       AND ($5::timestamptz IS NULL OR (last_seen, id) < ($5, $6::uuid))
     ORDER BY last_seen DESC, id DESC
     LIMIT $7";

const ONE_SQL: &str =
    "SELECT id, tenant_id, signature, workflow_id, error_code, vendor, step, status,
        event_count, first_seen, last_seen, created_at, updated_at, analyzing_at, actioned_at,
        resolved_at, resolved_by, reopen_count
     FROM incidents WHERE ($1::uuid IS NULL OR tenant_id = $1) AND id = $2";
