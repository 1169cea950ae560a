//! Escalation levels and acknowledgement. A tenant's channels carry a
//! level (1 is told first); an escalated incident that nobody acknowledged
//! within the configured time is told to the next level that has channels.
//! Acknowledging an incident stops that.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Store, StoreError};

/// An escalated incident whose latest level has waited long enough without
/// an acknowledgement, and a higher level of channels exists.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LevelDue {
    pub tenant_id: Uuid,
    pub incident_id: Uuid,
    /// The highest level it was sent to so far.
    pub level: i32,
    /// Whether every notification of that level failed (then the next
    /// level is due at once: a fallback).
    pub failed: bool,
    /// How long that level waits for an acknowledgement, in milliseconds.
    pub wait_ms: i64,
}

/// Who acknowledged an incident, and when.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Acknowledgement {
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

impl Store {
    /// Acknowledges `incident` (of `tenant`, or any tenant's for `None`) by
    /// `by`; returns false when it was acknowledged before (it keeps the
    /// first acknowledgement).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such incident for the
    /// caller; otherwise on database failure.
    pub async fn acknowledge_incident(
        &self,
        tenant: Option<Uuid>,
        incident: Uuid,
        by: &str,
    ) -> Result<bool, StoreError> {
        let acked = sqlx::query(
            "UPDATE incidents SET acknowledged_at = now(), acknowledged_by = $3, updated_at = now()
             WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) AND acknowledged_at IS NULL",
        )
        .bind(incident)
        .bind(tenant)
        .bind(by)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if acked > 0 {
            return Ok(true);
        }
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM incidents WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2))",
        )
        .bind(incident)
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?;
        if exists {
            Ok(false)
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// Who acknowledged `incident`, if anyone.
    ///
    /// # Errors
    /// On database failure.
    pub async fn acknowledgement(
        &self,
        tenant: Uuid,
        incident: Uuid,
    ) -> Result<Acknowledgement, StoreError> {
        Ok(sqlx::query_as(
            "SELECT acknowledged_at, acknowledged_by FROM incidents
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(incident)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(Acknowledgement {
            acknowledged_at: None,
            acknowledged_by: None,
        }))
    }

    /// Up to `limit` escalated incidents, neither resolved nor
    /// acknowledged, whose highest level notified was queued at least that
    /// level's wait ago (the least `escalate_after_ms` of its channels, or
    /// `after`) or failed on every channel, of tenants that have channels
    /// at a higher level.
    ///
    /// # Errors
    /// On database failure.
    pub async fn levels_due(
        &self,
        after: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<LevelDue>, StoreError> {
        Ok(sqlx::query_as(
            "WITH notified AS (
                 SELECT m.incident_id, max(m.level) AS level, max(m.joined_at) AS at
                 FROM notification_incidents m
                 JOIN incidents i ON i.id = m.incident_id
                 WHERE m.type = 'incident.escalated'
                   AND i.status <> 'RESOLVED' AND i.acknowledged_at IS NULL
                 GROUP BY m.incident_id
             ), judged AS (
                 SELECT x.*, i.tenant_id,
                     NOT EXISTS (
                         SELECT 1 FROM notification_incidents m
                         JOIN notifications n ON n.id = m.notification_id
                         WHERE m.incident_id = x.incident_id AND m.level = x.level
                           AND m.type = 'incident.escalated' AND n.status <> 'FAILED') AS failed,
                     coalesce((SELECT min(c.escalate_after_ms) FROM channels c
                               WHERE c.tenant_id = i.tenant_id AND c.level = x.level
                                 AND c.deleted_at IS NULL),
                              $1) AS wait_ms
                 FROM notified x JOIN incidents i ON i.id = x.incident_id
             )
             SELECT x.tenant_id, x.incident_id, x.level, x.failed, x.wait_ms
             FROM judged x
             WHERE (x.failed OR x.at <= now() - make_interval(secs => x.wait_ms / 1000.0))
               AND EXISTS (SELECT 1 FROM channels c
                           WHERE c.tenant_id = x.tenant_id AND c.deleted_at IS NULL
                             AND c.level > x.level)
             ORDER BY x.at LIMIT $2",
        )
        .bind(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}
