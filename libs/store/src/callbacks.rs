//! Workflow callbacks and their deliveries. A tenant registers one URL per
//! workflow, with a Standard Webhooks signing secret; every retry command
//! of that workflow gets a delivery row in the transaction that fires it,
//! and schedulers claim due deliveries (`FOR UPDATE SKIP LOCKED`, leasing
//! them by pushing `next_try_at` forward), POST outside any transaction,
//! then record each try.
//!
//! The signing secret is sealed at rest ([`crate::Slot::callback`]): sealed
//! and opened only here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{Slot, Store, StoreError, Work};

/// A registered callback, without its secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Callback {
    pub tenant_id: Uuid,
    pub workflow_id: String,
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A delivery claimed for one try.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub tenant_id: Uuid,
    pub action_id: Uuid,
    pub attempt: i32,
    pub workflow_id: String,
    /// The `webhook-id`: `retry:<action_id>:<attempt>`.
    pub msg_id: String,
    /// The exact JSON published on NATS.
    pub body: String,
    /// This try's number, 1 for the first.
    pub tries: i32,
    /// The callback's current URL and secret (opened); `None` once it was
    /// removed (the secret also when it cannot be opened).
    pub url: Option<String>,
    pub secret: Option<String>,
}

/// What became of one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryOutcome {
    /// A 2xx answer: delivered.
    Delivered,
    /// Any other answer or no answer: tried again at this time.
    Retried(DateTime<Utc>),
    /// Out of tries, or nothing to deliver to: given up.
    Failed,
}

impl TryOutcome {
    /// The outcome's name: `delivered`, `retried` or `failed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retried(_) => "retried",
            Self::Failed => "failed",
        }
    }
}

/// One try, as recorded.
#[derive(Debug, Clone)]
pub struct CallbackTry {
    pub started_at: DateTime<Utc>,
    /// The answer's status, when there was one.
    pub status_code: Option<u16>,
    /// Why it did not deliver, when it did not.
    pub error: Option<String>,
    pub outcome: TryOutcome,
}

impl Store {
    /// Registers (or replaces) the callback of `workflow`, with a new
    /// signing `secret` (sealed).
    ///
    /// # Errors
    /// On database failure, or [`StoreError::Sealed`] without a key.
    pub async fn set_callback(
        &self,
        tenant: Uuid,
        workflow: &str,
        url: &str,
        secret: &str,
    ) -> Result<Callback, StoreError> {
        let secret = self.seal(&Slot::callback(tenant, workflow), secret)?;
        Ok(sqlx::query_as(
            "INSERT INTO workflow_callbacks (tenant_id, workflow_id, url, secret)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, workflow_id) DO UPDATE
                 SET url = EXCLUDED.url, secret = EXCLUDED.secret, updated_at = now()
             RETURNING tenant_id, workflow_id, url, created_at, updated_at",
        )
        .bind(tenant)
        .bind(workflow)
        .bind(url)
        .bind(secret)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Removes the callback of `workflow`; returns whether there was one.
    /// Deliveries not yet made are then given up.
    ///
    /// # Errors
    /// On database failure.
    pub async fn remove_callback(&self, tenant: Uuid, workflow: &str) -> Result<bool, StoreError> {
        let removed =
            sqlx::query("DELETE FROM workflow_callbacks WHERE tenant_id = $1 AND workflow_id = $2")
                .bind(tenant)
                .bind(workflow)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(removed > 0)
    }

    /// The callback of `workflow`, if one is registered.
    ///
    /// # Errors
    /// On database failure.
    pub async fn callback(
        &self,
        tenant: Uuid,
        workflow: &str,
    ) -> Result<Option<Callback>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT tenant_id, workflow_id, url, created_at, updated_at
             FROM workflow_callbacks WHERE tenant_id = $1 AND workflow_id = $2",
        )
        .bind(tenant)
        .bind(workflow)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Claims up to `limit` due deliveries for one try each: their
    /// `next_try_at` moves `lease` ahead (so another scheduler takes them
    /// only if this one never records the try) and their try count grows.
    ///
    /// # Errors
    /// On database failure.
    pub async fn claim_callback_deliveries(
        &self,
        limit: i64,
        lease: std::time::Duration,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let due: Vec<DueDelivery> = sqlx::query_as(
            "WITH due AS (
                 SELECT id FROM callback_deliveries
                 WHERE status = 'PENDING' AND next_try_at <= now()
                 ORDER BY next_try_at, id LIMIT $1
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE callback_deliveries d
             SET tries = d.tries + 1, last_try_at = now(), updated_at = now(),
                 next_try_at = now() + make_interval(secs => $2)
             FROM due WHERE d.id = due.id
             RETURNING d.id, d.tenant_id, d.action_id, d.attempt, d.workflow_id, d.msg_id,
                       d.body, d.tries,
                       (SELECT c.url FROM workflow_callbacks c
                        WHERE c.tenant_id = d.tenant_id AND c.workflow_id = d.workflow_id) AS url,
                       (SELECT c.secret FROM workflow_callbacks c
                        WHERE c.tenant_id = d.tenant_id AND c.workflow_id = d.workflow_id) AS secret",
        )
        .bind(limit)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(due
            .into_iter()
            .map(|mut d| {
                let slot = Slot::callback(d.tenant_id, &d.workflow_id);
                d.secret = self.open_for_delivery(&slot, d.secret.take());
                d
            })
            .collect())
    }

    /// Records try `delivery.tries` of `delivery` (made to `url`; empty
    /// when there was none to make) and what follows from it.
    /// Returns false when the try is no longer this scheduler's (its lease
    /// ran out and another took the delivery), and then records nothing.
    ///
    /// # Errors
    /// On database failure.
    pub async fn record_callback_try(
        &self,
        delivery: &DueDelivery,
        url: &str,
        t: &CallbackTry,
    ) -> Result<bool, StoreError> {
        let (status, next, delivered) = match t.outcome {
            TryOutcome::Delivered => ("DELIVERED", None, Some(Utc::now())),
            TryOutcome::Retried(at) => ("PENDING", Some(at), None),
            TryOutcome::Failed => ("FAILED", None, None),
        };
        let code = t.status_code.map(i32::from);
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE callback_deliveries
             SET status = $3, next_try_at = coalesce($4, next_try_at), delivered_at = $5,
                 last_status_code = $6, last_error = $7, url = coalesce(NULLIF($8, ''), url),
                 updated_at = now()
             WHERE id = $1 AND tries = $2 AND status = 'PENDING'",
        )
        .bind(delivery.id)
        .bind(delivery.tries)
        .bind(status)
        .bind(next)
        .bind(delivered)
        .bind(code)
        .bind(&t.error)
        .bind(url)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO callback_tries (delivery_id, try, started_at, status_code, error, outcome, next_try_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (delivery_id, try) DO NOTHING",
        )
        .bind(delivery.id)
        .bind(delivery.tries)
        .bind(t.started_at)
        .bind(code)
        .bind(&t.error)
        .bind(t.outcome.as_str())
        .bind(next)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// When the nearest pending delivery is due, if any.
    ///
    /// # Errors
    /// On database failure.
    pub async fn next_callback_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT min(next_try_at) FROM callback_deliveries WHERE status = 'PENDING'",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}

impl Work {
    /// Queues the delivery of a fired retry command to its workflow's
    /// callback, when one is registered; returns whether it did. `body` is
    /// the exact JSON published on NATS, `msg_id` its message id.
    ///
    /// # Errors
    /// On database failure.
    pub async fn queue_callback(
        &mut self,
        tenant: Uuid,
        action: Uuid,
        attempt: i32,
        workflow: &str,
        msg_id: &str,
        body: &str,
    ) -> Result<bool, StoreError> {
        let queued = sqlx::query(
            "INSERT INTO callback_deliveries (tenant_id, action_id, attempt, workflow_id, msg_id, url, body)
             SELECT c.tenant_id, $2, $3, c.workflow_id, $5, c.url, $6
             FROM workflow_callbacks c WHERE c.tenant_id = $1 AND c.workflow_id = $4
             ON CONFLICT (action_id, attempt) DO NOTHING",
        )
        .bind(tenant)
        .bind(action)
        .bind(attempt)
        .bind(workflow)
        .bind(msg_id)
        .bind(body)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(queued > 0)
    }
}

/// The SQL of an action's `callback` column: its latest delivery's outcome
/// as JSON (`null` when it has none). Reads `actions.id`.
pub(crate) const CALLBACK_COLUMN: &str = "(SELECT json_build_object(
        'status', d.status, 'tries', d.tries, 'last_status_code', d.last_status_code,
        'last_error', d.last_error, 'delivered_at', d.delivered_at,
        'next_try_at', CASE WHEN d.status = 'PENDING' THEN d.next_try_at END)
     FROM callback_deliveries d WHERE d.action_id = actions.id
     ORDER BY d.attempt DESC LIMIT 1) AS callback";
