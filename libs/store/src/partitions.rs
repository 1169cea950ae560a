//! The day partitions of `events` (by `received_at`, UTC): made ahead of
//! time, and dropped whole past the events retention. The SQL functions
//! doing it are the migration's (`events_make_partition`,
//! `events_drop_partitions`); both take one advisory lock, so any number
//! of processes may call them.

use crate::{Store, StoreError};

/// How long partition changes wait for a table lock before giving up (the
/// next round tries again): a waiting lock on `events` would hold up every
/// insert queued behind it.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '5s'";

/// A day partition dropped past the events retention.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DroppedPartition {
    /// `events_pYYYYMMDD`.
    pub name: String,
    /// The events it held.
    pub events: i64,
}

impl Store {
    /// Makes the partitions of today and the next `ahead_days` days (UTC)
    /// that are missing, and the partition of every day the default
    /// partition caught rows of (moving them in); returns how many it made.
    ///
    /// # Errors
    /// On database failure, or when a lock on `events` was not had in time.
    pub async fn make_event_partitions(&self, ahead_days: u32) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
        let made: Vec<bool> = sqlx::query_scalar(
            "SELECT events_make_partition(d) FROM (
                 SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date AS d FROM events_default
                 UNION
                 SELECT (now() AT TIME ZONE 'UTC')::date + n FROM generate_series(0, $1) AS n
             ) days ORDER BY d",
        )
        .bind(i32::try_from(ahead_days).unwrap_or(i32::MAX))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(made.into_iter().filter(|&m| m).count() as u64)
    }

    /// Detaches and drops every day partition wholly older than the events
    /// retention, and records the sweep; returns what it dropped.
    ///
    /// # Errors
    /// On database failure, or when a lock on `events` was not had in time.
    pub async fn drop_event_partitions(&self) -> Result<Vec<DroppedPartition>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
        let dropped: Vec<DroppedPartition> = sqlx::query_as(
            "SELECT part AS name, held AS events FROM events_drop_partitions(
                 now() - (SELECT keep FROM retention WHERE name = 'events'))",
        )
        .fetch_all(&mut *tx)
        .await?;
        if !dropped.is_empty() {
            sqlx::query(
                "UPDATE retention SET last_pruned_at = now(), last_pruned = $1
                 WHERE name = 'events'",
            )
            .bind(dropped.iter().map(|d| d.events).sum::<i64>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(dropped)
    }

    /// The partitions of `events`, by name (the day ones in day order, then
    /// `events_default`).
    ///
    /// # Errors
    /// On database failure.
    pub async fn event_partitions(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'events'::regclass
             ORDER BY c.relname = 'events_default', c.relname",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
