//! Notifications of escalated incidents to a tenant's channels, and their
//! tries. The notifier queues each (incident, channel, level, type) once,
//! in the transaction that takes an escalation (a notification of its own,
//! or a place in an open group: [`crate::groups`]); its delivery task claims due rows
//! (`FOR UPDATE SKIP LOCKED`, leased by pushing `next_try_at` forward),
//! POSTs outside any transaction, then records each try.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{Store, StoreError, TryOutcome};

/// A notification's id: the same (incident, channel, level, type) always
/// gives the same id.
#[must_use]
pub fn notification_id(incident: Uuid, channel: Uuid, level: i32, kind: &str) -> Uuid {
    Uuid::new_v5(
        &incident,
        format!("notification:{channel}:{level}:{kind}").as_bytes(),
    )
}

/// A notification to queue.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub tenant_id: Uuid,
    pub incident_id: Uuid,
    pub channel_id: Uuid,
    pub level: i32,
    /// `incident.escalated` or `incident.resolved`.
    pub kind: &'static str,
    /// The exact JSON POSTed.
    pub body: String,
    /// Not sent before this (the error code's `notify_after`); `None`: at
    /// once.
    pub not_before: Option<DateTime<Utc>>,
    /// The root cause it shares with other incidents, if any: it may join
    /// an open notification of the same key ([`crate::groups`]).
    pub group_key: Option<String>,
    /// The body for its incident alone, when `body` lists a group.
    pub lead_body: Option<String>,
    /// Further incidents it tells of (the resolution of a group).
    pub also: Vec<Uuid>,
}

impl NewNotification {
    /// Its id ([`notification_id`]).
    #[must_use]
    pub fn id(&self) -> Uuid {
        notification_id(self.incident_id, self.channel_id, self.level, self.kind)
    }

    /// Its `webhook-id`, the same on every try.
    #[must_use]
    pub fn msg_id(&self) -> String {
        format!("notification:{}", self.id())
    }
}

/// A notification claimed for one try.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueNotification {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub incident_id: Uuid,
    pub channel_id: Uuid,
    /// The channel's kind: `webhook`, `slack` or `pagerduty`.
    pub kind: String,
    pub msg_id: String,
    pub body: String,
    /// This try's number, 1 for the first.
    pub tries: i32,
    /// The channel's URL and secret (opened); `None` once it was removed
    /// (the secret also when it cannot be opened).
    pub url: Option<String>,
    pub secret: Option<String>,
    /// The channel's own rate limit, if it sets one.
    pub rate_per_minute: Option<i32>,
}

/// One try, as recorded.
#[derive(Debug, Clone)]
pub struct NotificationTry {
    pub started_at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    pub outcome: TryOutcome,
}

/// A delivered escalation notification whose incidents have all resolved
/// since, and whose channel has not been told so.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResolvedToNotify {
    /// The escalation notification.
    pub notification_id: Uuid,
    pub tenant_id: Uuid,
    /// Its first incident.
    pub incident_id: Uuid,
    pub channel_id: Uuid,
    pub level: i32,
    /// How many incidents it told of.
    pub incident_count: i32,
}

/// A notification as the incident view shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NotificationSummary {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub channel: String,
    pub kind: String,
    pub level: i32,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub type_: String,
    pub status: String,
    pub tries: i32,
    /// How many incidents it tells of (more than one: a group).
    pub incident_count: i32,
    /// The incident the notification is keyed by (its group's first).
    pub lead_incident_id: Uuid,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Cancels the escalated notifications never tried all of whose
    /// incidents have resolved meanwhile (held back by `notify_after` or a
    /// group's wait), saying why; returns how many.
    ///
    /// # Errors
    /// On database failure.
    pub async fn cancel_quieted(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE notifications n
             SET status = 'CANCELLED', updated_at = now(),
                 last_error = CASE WHEN n.incident_count = 1
                     THEN 'not sent: the incident resolved (by '
                          || coalesce(i.resolved_by, 'unknown') || ') within notify_after'
                     ELSE 'not sent: its ' || n.incident_count
                          || ' incidents resolved within notify_after' END
             FROM incidents i
             WHERE i.id = n.incident_id
               AND n.status = 'PENDING' AND n.tries = 0 AND n.type = 'incident.escalated'
               AND NOT EXISTS (
                   SELECT 1 FROM notification_incidents m JOIN incidents o ON o.id = m.incident_id
                   WHERE m.notification_id = n.id AND o.status <> 'RESOLVED')",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Gives back the try `n` claimed without making it (its channel's
    /// rate limit said wait): due again at `at`, its try count as before.
    ///
    /// # Errors
    /// On database failure.
    pub async fn defer_notification(
        &self,
        n: &DueNotification,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE notifications SET tries = tries - 1, next_try_at = $3, updated_at = now()
             WHERE id = $1 AND tries = $2 AND status = 'PENDING'",
        )
        .bind(n.id)
        .bind(n.tries)
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0)
    }

    /// Claims up to `limit` due notifications for one try each: their
    /// `next_try_at` moves `lease` ahead and their try count grows.
    ///
    /// # Errors
    /// On database failure.
    pub async fn claim_notifications(
        &self,
        limit: i64,
        lease: std::time::Duration,
    ) -> Result<Vec<DueNotification>, StoreError> {
        let due: Vec<DueNotification> = sqlx::query_as(
            "WITH due AS (
                 SELECT id FROM notifications
                 WHERE status = 'PENDING' AND next_try_at <= now()
                 ORDER BY next_try_at, id LIMIT $1
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE notifications n
             SET tries = n.tries + 1, updated_at = now(),
                 next_try_at = now() + make_interval(secs => $2)
             FROM due, channels c
             WHERE n.id = due.id AND c.id = n.channel_id
             RETURNING n.id, n.tenant_id, n.incident_id, n.channel_id, c.kind, n.msg_id,
                       n.body, n.tries,
                       CASE WHEN c.deleted_at IS NULL THEN c.url END AS url,
                       CASE WHEN c.deleted_at IS NULL THEN c.secret END AS secret,
                       c.rate_per_minute",
        )
        .bind(limit)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(due
            .into_iter()
            .map(|mut n| {
                let slot = crate::Slot::channel(n.channel_id);
                n.secret = self.open_for_delivery(&slot, n.secret.take());
                n
            })
            .collect())
    }

    /// Records try `n.tries` of `n` and what follows from it. Returns false
    /// when the try is no longer this notifier's (its lease ran out and
    /// another took it), and then records nothing.
    ///
    /// # Errors
    /// On database failure.
    pub async fn record_notification_try(
        &self,
        n: &DueNotification,
        t: &NotificationTry,
    ) -> Result<bool, StoreError> {
        let (status, next, delivered) = match t.outcome {
            TryOutcome::Delivered => ("DELIVERED", None, Some(Utc::now())),
            TryOutcome::Retried(at) => ("PENDING", Some(at), None),
            TryOutcome::Failed => ("FAILED", None, None),
        };
        let code = t.status_code.map(i32::from);
        let latency = t.latency_ms.map(|ms| i32::try_from(ms).unwrap_or(i32::MAX));
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE notifications
             SET status = $3, next_try_at = coalesce($4, next_try_at), delivered_at = $5,
                 last_status_code = $6, last_error = $7, updated_at = now()
             WHERE id = $1 AND tries = $2 AND status = 'PENDING'",
        )
        .bind(n.id)
        .bind(n.tries)
        .bind(status)
        .bind(next)
        .bind(delivered)
        .bind(code)
        .bind(&t.error)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO notification_tries
                 (notification_id, try, started_at, status_code, latency_ms, error, outcome, next_try_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (notification_id, try) DO NOTHING",
        )
        .bind(n.id)
        .bind(n.tries)
        .bind(t.started_at)
        .bind(code)
        .bind(latency)
        .bind(&t.error)
        .bind(t.outcome.as_str())
        .bind(next)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// When the nearest pending notification is due, if any.
    ///
    /// # Errors
    /// On database failure.
    pub async fn next_notification_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT min(next_try_at) FROM notifications WHERE status = 'PENDING'",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Up to `limit` delivered escalation notifications all of whose
    /// incidents are resolved now, that have no `incident.resolved`
    /// notification yet; removed channels are left out.
    ///
    /// # Errors
    /// On database failure.
    pub async fn resolved_to_notify(
        &self,
        limit: i64,
    ) -> Result<Vec<ResolvedToNotify>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT n.id AS notification_id, n.tenant_id, n.incident_id, n.channel_id, n.level,
                    n.incident_count
             FROM notifications n
             JOIN channels c ON c.id = n.channel_id
             WHERE n.type = 'incident.escalated' AND n.status = 'DELIVERED' AND c.deleted_at IS NULL
               AND NOT EXISTS (
                   SELECT 1 FROM notification_incidents m JOIN incidents i ON i.id = m.incident_id
                   WHERE m.notification_id = n.id AND i.status <> 'RESOLVED')
               AND NOT EXISTS (
                   SELECT 1 FROM notifications r
                   WHERE r.incident_id = n.incident_id AND r.channel_id = n.channel_id
                     AND r.level = n.level AND r.type = 'incident.resolved')
             ORDER BY n.delivered_at, n.incident_id, c.position
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The notifications of `incident`, oldest first.
    ///
    /// # Errors
    /// On database failure.
    pub async fn incident_notifications(
        &self,
        tenant: Uuid,
        incident: Uuid,
    ) -> Result<Vec<NotificationSummary>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT n.id, n.channel_id, c.name AS channel, c.kind, n.level, n.type, n.status,
                    n.tries, n.incident_count, n.incident_id AS lead_incident_id,
                    n.last_status_code, n.last_error, n.delivered_at, n.created_at
             FROM notification_incidents m
             JOIN notifications n ON n.id = m.notification_id
             JOIN channels c ON c.id = n.channel_id
             WHERE n.tenant_id = $1 AND m.incident_id = $2
             ORDER BY n.created_at, c.position, n.level",
        )
        .bind(tenant)
        .bind(incident)
        .fetch_all(&self.pool)
        .await?)
    }
}
