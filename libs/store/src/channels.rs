//! A tenant's notification channels: where escalated incidents are sent
//! (a generic webhook, a Slack incoming webhook, PagerDuty's Events API).
//! Each has a Standard Webhooks signing secret, shown once when it is
//! added; a removed channel keeps its row (marked deleted) so the
//! notifications already made still name it, and gets no new ones.
//!
//! The signing secret is sealed at rest ([`crate::Slot::channel`]): sealed
//! here, and opened where the notifier claims a delivery.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{Slot, Store, StoreError};

/// A channel, without its secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Channel {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    /// `webhook`, `slack` or `pagerduty`.
    pub kind: String,
    pub url: String,
    /// The least severity notified: `low`, `medium`, `high` or `critical`.
    pub min_severity: String,
    /// The PagerDuty integration key (pagerduty only).
    pub routing_key: Option<String>,
    /// Its escalation level, 1 (told first) to 10.
    pub level: i32,
    /// How long its level waits for an acknowledgement before the next
    /// level is told; `None`: `notifications.escalate_after_ms`.
    pub escalate_after_ms: Option<i64>,
    /// Deliveries per minute it takes at most; `None`:
    /// `notifications.channel_rate_per_minute`.
    pub rate_per_minute: Option<i32>,
    /// The channel's place in the tenant's order.
    pub position: i64,
    pub created_at: DateTime<Utc>,
}

/// A channel to add.
#[derive(Debug, Clone)]
pub struct NewChannel<'a> {
    pub tenant_id: Uuid,
    pub name: &'a str,
    pub kind: &'a str,
    pub url: &'a str,
    pub secret: &'a str,
    pub min_severity: &'a str,
    pub routing_key: Option<&'a str>,
    pub level: i32,
    pub escalate_after_ms: Option<i64>,
    pub rate_per_minute: Option<i32>,
}

impl Store {
    /// Adds a channel at the end of its tenant's order, its secret sealed.
    ///
    /// # Errors
    /// On database failure, or [`StoreError::Sealed`] without a key.
    pub async fn add_channel(&self, c: &NewChannel<'_>) -> Result<Channel, StoreError> {
        let id = Uuid::now_v7();
        let secret = self.seal(&Slot::channel(id), c.secret)?;
        Ok(sqlx::query_as(
            "INSERT INTO channels (id, tenant_id, name, kind, url, secret, min_severity, routing_key, level,
                                   escalate_after_ms, rate_per_minute)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             RETURNING id, tenant_id, name, kind, url, min_severity, routing_key, level,
                       escalate_after_ms, rate_per_minute, position, created_at",
        )
        .bind(id)
        .bind(c.tenant_id)
        .bind(c.name)
        .bind(c.kind)
        .bind(c.url)
        .bind(secret)
        .bind(c.min_severity)
        .bind(c.routing_key)
        .bind(c.level)
        .bind(c.escalate_after_ms)
        .bind(c.rate_per_minute)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The tenant's channels, in order.
    ///
    /// # Errors
    /// On database failure.
    pub async fn channels(&self, tenant: Uuid) -> Result<Vec<Channel>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, name, kind, url, min_severity, routing_key, level,
                    escalate_after_ms, rate_per_minute, position, created_at
             FROM channels WHERE tenant_id = $1 AND deleted_at IS NULL
             ORDER BY level, position",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes the tenant's channel `id`; returns whether it had one. Its
    /// notifications not yet delivered are then given up.
    ///
    /// # Errors
    /// On database failure.
    pub async fn remove_channel(&self, tenant: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let removed = sqlx::query(
            "UPDATE channels SET deleted_at = now()
             WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(removed > 0)
    }
}
