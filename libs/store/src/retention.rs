//! Retention: idempotency keys and published outbox rows are kept as long
//! as the `retention` table says (at least 7 days and an hour), then
//! deleted in bulk, `batch` rows per statement, oldest found through a
//! BRIN index on `created_at`. Events (at least a day) go a whole day
//! partition at a time ([`crate::partitions`]), and the vendors' counts by
//! the minute (`vendor_minutes`) with them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Store, StoreError};

/// What is kept for a while and then deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// `ingest_keys`: a key is a duplicate while its row is kept.
    IngestKeys,
    /// Published `outbox` rows.
    Outbox,
    /// `events`, by whole day partitions.
    Events,
}

impl Kept {
    /// Every kind, in the order shown.
    pub const ALL: [Kept; 3] = [Kept::IngestKeys, Kept::Outbox, Kept::Events];

    /// Its name in the `retention` table and on the command line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IngestKeys => "ingest_keys",
            Self::Outbox => "outbox",
            Self::Events => "events",
        }
    }

    /// The shortest retention allowed.
    #[must_use]
    pub fn minimum(self) -> Duration {
        match self {
            Self::IngestKeys => Duration::from_secs(7 * 24 * 3600),
            Self::Outbox => Duration::from_secs(3600),
            Self::Events => Duration::from_secs(24 * 3600),
        }
    }

    /// The kind called `name`.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One retention setting and its last sweep.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Retention {
    pub name: String,
    /// How long rows are kept, in seconds.
    pub keep_secs: i64,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    pub last_pruned_at: Option<DateTime<Utc>>,
    /// Rows deleted by the last sweep that deleted any.
    pub last_pruned: i64,
}

impl Store {
    /// Every retention setting.
    ///
    /// # Errors
    /// On database failure.
    pub async fn retention(&self) -> Result<Vec<Retention>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT name, extract(epoch FROM keep)::bigint AS keep_secs, updated_at, updated_by,
                    last_pruned_at, last_pruned
             FROM retention ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Keeps `kept` for `keep`, set by `by`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when `keep` is below the kind's minimum;
    /// otherwise on database failure.
    pub async fn set_retention(
        &self,
        kept: Kept,
        keep: Duration,
        by: &str,
    ) -> Result<Retention, StoreError> {
        if keep < kept.minimum() {
            return Err(StoreError::Conflict(format!(
                "{} must be kept at least {} s",
                kept.as_str(),
                kept.minimum().as_secs()
            )));
        }
        Ok(sqlx::query_as(
            "UPDATE retention SET keep = make_interval(secs => $2), updated_at = now(), updated_by = $3
             WHERE name = $1
             RETURNING name, extract(epoch FROM keep)::bigint AS keep_secs, updated_at, updated_by,
                       last_pruned_at, last_pruned",
        )
        .bind(kept.as_str())
        .bind(keep.as_secs_f64())
        .bind(by)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Deletes up to `batch` rows of `kept` past their retention (events:
    /// every day partition past it); returns how many.
    ///
    /// # Errors
    /// On database failure.
    pub async fn prune_once(&self, kept: Kept, batch: i64) -> Result<u64, StoreError> {
        let sql = match kept {
            Kept::Events => {
                let dropped = self.drop_event_partitions().await?;
                // The vendors' minutes go with the events they counted.
                sqlx::query(
                    "DELETE FROM vendor_minutes
                     WHERE minute < now() - (SELECT keep FROM retention WHERE name = 'events')",
                )
                .execute(&self.pool)
                .await?;
                return Ok(dropped.iter().map(|d| u64::try_from(d.events).unwrap_or(0)).sum());
            }
            Kept::IngestKeys => {
                "DELETE FROM ingest_keys WHERE ctid = ANY (ARRAY(
                     SELECT ctid FROM ingest_keys
                     WHERE created_at < now() - (SELECT keep FROM retention WHERE name = 'ingest_keys')
                     LIMIT $1))"
            }
            Kept::Outbox => {
                "DELETE FROM outbox WHERE ctid = ANY (ARRAY(
                     SELECT ctid FROM outbox
                     WHERE published_at IS NOT NULL
                       AND created_at < now() - (SELECT keep FROM retention WHERE name = 'outbox')
                     LIMIT $1))"
            }
        };
        Ok(sqlx::query(sql)
            .bind(batch)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Deletes every row of `kept` past its retention, `batch` at a time,
    /// and records the sweep; returns how many.
    ///
    /// # Errors
    /// On database failure.
    pub async fn prune(&self, kept: Kept, batch: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = self.prune_once(kept, batch).await?;
            total += n;
            if kept == Kept::Events || n < u64::try_from(batch).unwrap_or(u64::MAX) {
                break;
            }
        }
        // Events record their own sweep (a partition may hold none).
        if total > 0 && kept != Kept::Events {
            sqlx::query(
                "UPDATE retention SET last_pruned_at = now(), last_pruned = $2 WHERE name = $1",
            )
            .bind(kept.as_str())
            .bind(i64::try_from(total).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        }
        Ok(total)
    }
}
