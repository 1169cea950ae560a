//! The outbox: messages committed with their cause, published after.

use uuid::Uuid;

use crate::{Store, StoreError};

/// A message waiting to be published.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub tenant_id: Uuid,
    pub subject: String,
    pub msg_id: String,
    pub payload: serde_json::Value,
    pub correlation_id: Option<String>,
}

impl Store {
    /// Unpublished rows older than `min_age_ms` (left by a crash between
    /// commit and publish), oldest first, at most `limit`.
    ///
    /// # Errors
    /// On database failure.
    pub async fn stale_outbox(
        &self,
        min_age_ms: u64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id, subject, msg_id, payload, correlation_id FROM outbox
             WHERE published_at IS NULL
               AND created_at < now() - make_interval(secs => $1)
             ORDER BY id LIMIT $2",
        )
        .bind(min_age_ms as f64 / 1000.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks rows as published. Publishing twice is harmless (the message
    /// id deduplicates), so no lock is held across the publish.
    ///
    /// # Errors
    /// On database failure.
    pub async fn mark_published(&self, ids: &[i64]) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL",
        )
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many rows wait to be published.
    ///
    /// # Errors
    /// On database failure.
    pub async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
