//! The gateway's idempotency keys.
//!
//! A key is reserved in a transaction that stays open while the event is
//! published; it commits only once the broker has acked, so a rejected or
//! failed publish leaves nothing behind, and a key stays a duplicate for as
//! long as the row lives (beyond the broker's duplicate window).

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{Store, StoreError};

/// What reserving a key found.
#[derive(Debug)]
pub enum Reserve {
    /// The key is new: publish, then [`KeyReservation::commit`].
    New(KeyReservation),
    /// The key was seen with the same body: the first event's id.
    Duplicate {
        event_id: Uuid,
        correlation_id: String,
    },
    /// The key was seen with another body.
    Conflict { event_id: Uuid },
}

/// An open reservation of an idempotency key.
#[derive(Debug)]
pub struct KeyReservation {
    tx: Transaction<'static, Postgres>,
}

impl KeyReservation {
    /// Makes the reservation permanent (after the publish was acked).
    ///
    /// # Errors
    /// On database failure; the key is then not reserved.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Drops the reservation (the publish failed).
    ///
    /// # Errors
    /// On database failure (the transaction is rolled back anyway).
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl Store {
    /// Reserves `key` for `tenant`. A concurrent reservation of the same key
    /// waits for this one to commit or roll back, so exactly one wins.
    /// Events already persisted from NATS with the same key count as seen.
    ///
    /// # Errors
    /// On database failure.
    pub async fn reserve_key(
        &self,
        tenant: Uuid,
        key: &str,
        event_id: Uuid,
        body_hash: &[u8],
        correlation_id: &str,
    ) -> Result<Reserve, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO ingest_keys (tenant_id, idempotency_key, event_id, body_hash, correlation_id)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(key)
        .bind(event_id)
        .bind(body_hash)
        .bind(correlation_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;

        if !inserted {
            tx.rollback().await?;
            let (event_id, hash, correlation_id): (Uuid, Vec<u8>, String) = sqlx::query_as(
                "SELECT event_id, body_hash, correlation_id FROM ingest_keys
                 WHERE tenant_id = $1 AND idempotency_key = $2",
            )
            .bind(tenant)
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
            return Ok(seen(event_id, &hash, body_hash, correlation_id));
        }
        // The key may have arrived through NATS, straight to the detector.
        let persisted: Option<(Uuid, Vec<u8>, String)> = sqlx::query_as(
            "SELECT id, body_hash, correlation_id FROM events
             WHERE tenant_id = $1 AND idempotency_key = $2",
        )
        .bind(tenant)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        Ok(match persisted {
            None => Reserve::New(KeyReservation { tx }),
            Some((event_id, hash, correlation_id)) => {
                seen(event_id, &hash, body_hash, correlation_id)
            }
        })
    }
}

fn seen(event_id: Uuid, stored: &[u8], body_hash: &[u8], correlation_id: String) -> Reserve {
    if stored == body_hash {
        Reserve::Duplicate {
            event_id,
            correlation_id,
        }
    } else {
        Reserve::Conflict { event_id }
    }
}
