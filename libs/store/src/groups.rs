//! Queuing notifications, and grouping them: the incidents that share a
//! root cause (a group key) and come within a grouping window are told in
//! one notification per channel, level and type, which lists them.
//!
//! A notification keeps its first incident (`incident_id`, which makes its
//! id); `notification_incidents` holds every incident it tells of, and its
//! key (incident, channel, level, type) is what makes each told once,
//! whatever the redeliveries: an incident already in a notification of
//! that channel, level and type is not queued again. A group stays open to
//! new incidents until its first try; joining locks its row, so a delivery
//! claims it before or after a join, never during one, and the group's key
//! is taken under a transaction-scoped advisory lock, so two notifiers
//! make one group, not two.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{NewNotification, StoreError, Work};

/// What queuing a notification did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// A new notification.
    New,
    /// Its incident joined the open group `id`, whose body must now be
    /// made again from `lead_body` (the body for its first incident alone)
    /// for its channel `kind`.
    Joined {
        id: Uuid,
        kind: String,
        lead_body: String,
    },
    /// Its incident was told (or queued) of this before: nothing changed.
    Known,
}

/// One incident a notification tells of.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct GroupMember {
    pub incident_id: Uuid,
    pub workflow_id: String,
    pub error_code: String,
    pub vendor: Option<String>,
    pub status: String,
    pub first_seen: DateTime<Utc>,
}

impl Work {
    /// Queues `n`, or adds its incident to an open group of the same key
    /// made within `window` (none when `window` is zero or `n` has no
    /// key).
    ///
    /// # Errors
    /// On database failure.
    pub async fn queue_notification(
        &mut self,
        n: &NewNotification,
        window: Duration,
    ) -> Result<Queued, StoreError> {
        let known: Option<Uuid> = sqlx::query_scalar(
            "SELECT notification_id FROM notification_incidents
             WHERE incident_id = $1 AND channel_id = $2 AND level = $3 AND type = $4",
        )
        .bind(n.incident_id)
        .bind(n.channel_id)
        .bind(n.level)
        .bind(n.kind)
        .fetch_optional(self.conn())
        .await?;
        if known.is_some() {
            return Ok(Queued::Known);
        }
        if let Some(key) = n.group_key.as_deref().filter(|_| !window.is_zero())
            && let Some(joined) = self.join_group(n, key, window).await?
        {
            return Ok(joined);
        }
        let made = sqlx::query(
            "INSERT INTO notifications (id, tenant_id, incident_id, channel_id, level, type, msg_id, body,
                                        next_try_at, group_key, lead_body, incident_count)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()), $10, $11, $12)
             ON CONFLICT DO NOTHING",
        )
        .bind(n.id())
        .bind(n.tenant_id)
        .bind(n.incident_id)
        .bind(n.channel_id)
        .bind(n.level)
        .bind(n.kind)
        .bind(n.msg_id())
        .bind(&n.body)
        .bind(n.not_before)
        .bind(&n.group_key)
        .bind(n.lead_body.as_deref())
        .bind(i32::try_from(1 + n.also.len()).unwrap_or(i32::MAX))
        .execute(self.conn())
        .await?
        .rows_affected();
        if made == 0 {
            return Ok(Queued::Known);
        }
        let incidents: Vec<Uuid> = std::iter::once(n.incident_id)
            .chain(n.also.iter().copied())
            .collect();
        sqlx::query(
            "INSERT INTO notification_incidents (notification_id, incident_id, channel_id, level, type)
             SELECT $1, i, $3, $4, $5 FROM unnest($2::uuid[]) AS i
             ON CONFLICT DO NOTHING",
        )
        .bind(n.id())
        .bind(&incidents)
        .bind(n.channel_id)
        .bind(n.level)
        .bind(n.kind)
        .execute(self.conn())
        .await?;
        Ok(Queued::New)
    }

    /// Adds `n`'s incident to the open group of `key`, if there is one.
    async fn join_group(
        &mut self,
        n: &NewNotification,
        key: &str,
        window: Duration,
    ) -> Result<Option<Queued>, StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!(
                "notification-group:{}:{}:{}:{key}",
                n.channel_id, n.level, n.kind
            ))
            .execute(self.conn())
            .await?;
        let open: Option<(Uuid, String, Option<String>)> = sqlx::query_as(
            "SELECT n.id, c.kind, n.lead_body
             FROM notifications n JOIN channels c ON c.id = n.channel_id
             WHERE n.channel_id = $1 AND n.level = $2 AND n.type = $3 AND n.group_key = $4
               AND n.status = 'PENDING' AND n.tries = 0
               AND n.created_at > now() - make_interval(secs => $5)
             ORDER BY n.created_at LIMIT 1
             FOR UPDATE OF n",
        )
        .bind(n.channel_id)
        .bind(n.level)
        .bind(n.kind)
        .bind(key)
        .bind(window.as_secs_f64())
        .fetch_optional(self.conn())
        .await?;
        let Some((id, kind, Some(lead_body))) = open else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO notification_incidents (notification_id, incident_id, channel_id, level, type)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(n.incident_id)
        .bind(n.channel_id)
        .bind(n.level)
        .bind(n.kind)
        .execute(self.conn())
        .await?;
        Ok(Some(Queued::Joined {
            id,
            kind,
            lead_body,
        }))
    }

    /// The incidents notification `id` tells of, first first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn group_members(&mut self, id: Uuid) -> Result<Vec<GroupMember>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT i.id AS incident_id, i.workflow_id, i.error_code, i.vendor, i.status, i.first_seen
             FROM notification_incidents m JOIN incidents i ON i.id = m.incident_id
             WHERE m.notification_id = $1
             ORDER BY m.joined_at, i.id",
        )
        .bind(id)
        .fetch_all(self.conn())
        .await?)
    }

    /// Sets the body of the group `id` (not yet tried), and its count of
    /// incidents to `count`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn regroup(&mut self, id: Uuid, body: &str, count: usize) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notifications SET body = $2, incident_count = $3, updated_at = now()
             WHERE id = $1 AND status = 'PENDING' AND tries = 0",
        )
        .bind(id)
        .bind(body)
        .bind(i32::try_from(count).unwrap_or(i32::MAX))
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
