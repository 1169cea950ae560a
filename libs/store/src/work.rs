//! The worker transaction pattern: a worker's effects and the messages they
//! cause are committed together, then published.
//!
//! A worker opens a [`Work`] ([`Store::begin_work`]), lets the store write
//! its effects into it (the detector's [`Work::detect`]), adds the messages
//! those effects cause with [`Work::outbox`], and commits. [`Committed`]
//! holds the outbox rows the commit wrote, ready for the relay: nothing is
//! read back, and the store never calls into the worker.

use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::{OutboxRow, Store, StoreError};

/// A message to publish once its transaction commits.
#[derive(Debug, Clone)]
pub struct NewOutbox {
    pub tenant_id: Uuid,
    pub subject: String,
    /// The broker's deduplication id: stable for the effect it announces.
    pub msg_id: String,
    pub payload: serde_json::Value,
    pub correlation_id: Option<String>,
}

/// A worker's open transaction.
#[derive(Debug)]
pub struct Work {
    tx: Transaction<'static, Postgres>,
    outbox: Vec<OutboxRow>,
}

/// What a committed [`Work`] left to publish.
#[derive(Debug, Default)]
#[must_use = "the outbox rows must be handed to the relay"]
pub struct Committed {
    /// The outbox rows this commit wrote, in the order they were added.
    pub outbox: Vec<OutboxRow>,
}

const INSERT_OUTBOX: &str = "
INSERT INTO outbox (tenant_id, subject, msg_id, payload, correlation_id)
SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::text[])
ON CONFLICT (msg_id) DO NOTHING
RETURNING id, msg_id";

#[derive(sqlx::FromRow)]
struct Written {
    id: i64,
    msg_id: String,
}

impl Store {
    /// Opens a worker's transaction.
    ///
    /// # Errors
    /// When no connection can be had.
    pub async fn begin_work(&self) -> Result<Work, StoreError> {
        Ok(Work {
            tx: self.pool.begin().await?,
            outbox: Vec::new(),
        })
    }
}

impl Work {
    /// The transaction's connection, for the store's own statements.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Writes `messages` to the outbox in this transaction. A message whose
    /// id is already in the outbox (the same effect announced before) is
    /// not written again and not published again by this commit.
    ///
    /// # Errors
    /// On database failure; the transaction is then to be dropped.
    pub async fn outbox(&mut self, messages: Vec<NewOutbox>) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let written: Vec<Written> = sqlx::query_as(INSERT_OUTBOX)
            .bind(messages.iter().map(|m| m.tenant_id).collect::<Vec<_>>())
            .bind(
                messages
                    .iter()
                    .map(|m| m.subject.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                messages
                    .iter()
                    .map(|m| m.msg_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                messages
                    .iter()
                    .map(|m| m.payload.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                messages
                    .iter()
                    .map(|m| m.correlation_id.as_deref())
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&mut *self.tx)
            .await?;
        let mut ids: std::collections::HashMap<String, i64> =
            written.into_iter().map(|w| (w.msg_id, w.id)).collect();
        for m in messages {
            if let Some(id) = ids.remove(&m.msg_id) {
                self.outbox.push(OutboxRow {
                    id,
                    tenant_id: m.tenant_id,
                    subject: m.subject,
                    msg_id: m.msg_id,
                    payload: m.payload,
                    correlation_id: m.correlation_id,
                });
            }
        }
        Ok(())
    }

    /// Commits the effects and the outbox rows together.
    ///
    /// # Errors
    /// On database failure; then nothing was written.
    pub async fn commit(self) -> Result<Committed, StoreError> {
        self.tx.commit().await?;
        Ok(Committed {
            outbox: self.outbox,
        })
    }

    /// Rolls the transaction back now, letting go of the rows it holds
    /// (dropping it would send the rollback only when the connection is
    /// next used).
    ///
    /// # Errors
    /// On database failure.
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}
