//! The gateway's idempotency keys.
//!
//! Keys are reserved in a transaction that stays open while the events are
//! published; it commits only once the broker has acked them, and drops the
//! keys whose publish failed, so a rejected or failed publish leaves nothing
//! behind. Each reservation has an id the message carries; the detector
//! stores an HTTP event only when the committed row holds that id, so a
//! publish given up on here (and answered 503) is never stored, even if the
//! broker took it after all. A key stays a duplicate for as long as its row lives, far beyond
//! the broker's duplicate window. A concurrent reservation of the same key
//! waits for this one to finish, so exactly one request wins.

use std::collections::{HashMap, HashSet};

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{Store, StoreError};

/// One key to reserve.
#[derive(Debug, Clone)]
pub struct KeyClaim {
    pub key: String,
    pub event_id: Uuid,
    pub body_hash: Vec<u8>,
    pub correlation_id: String,
    /// This reservation's id, which the published message carries (and
    /// uses as its `Nats-Msg-Id`): the detector stores the event only while
    /// the key's row holds it.
    pub reservation: Uuid,
}

/// What reserving one key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The key is new: publish, then commit the reservation.
    New,
    /// The key was seen with the same body: the first event's id.
    Duplicate {
        event_id: Uuid,
        correlation_id: String,
    },
    /// The key was seen with another body.
    Conflict { event_id: Uuid },
}

/// A key's row as a reservation finds it taken.
#[derive(sqlx::FromRow)]
struct TakenKey {
    idempotency_key: String,
    event_id: Uuid,
    body_hash: Vec<u8>,
    correlation_id: String,
}

/// Open reservations of new keys.
#[derive(Debug)]
pub struct Reservation {
    tx: Transaction<'static, Postgres>,
    tenant: Uuid,
}

impl Reservation {
    /// Makes the reservations permanent, except for `failed` keys (whose
    /// publish did not go through), which are released.
    ///
    /// # Errors
    /// On database failure; then no key is reserved.
    pub async fn commit(mut self, failed: &[String]) -> Result<(), StoreError> {
        if !failed.is_empty() {
            sqlx::query(
                "DELETE FROM ingest_keys WHERE tenant_id = $1 AND idempotency_key = ANY($2)",
            )
            .bind(self.tenant)
            .bind(failed)
            .execute(&mut *self.tx)
            .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }

    /// Releases every reservation.
    ///
    /// # Errors
    /// On database failure (the transaction is rolled back anyway).
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl Store {
    /// Reserves `claims` (distinct keys) for `tenant`; one answer per claim,
    /// in order. Keys of events that reached the detector straight from NATS
    /// have their row too, so both paths see each other's keys.
    ///
    /// # Errors
    /// On database failure; nothing is reserved then.
    pub async fn reserve_keys(
        &self,
        tenant: Uuid,
        claims: &[KeyClaim],
    ) -> Result<(Vec<Claimed>, Reservation), StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted: Vec<String> = sqlx::query_scalar(
            "INSERT INTO ingest_keys
                 (tenant_id, idempotency_key, event_id, body_hash, correlation_id, reservation)
             SELECT $1, k, e, h, c, r
             FROM UNNEST($2::text[], $3::uuid[], $4::bytea[], $5::text[], $6::uuid[])
                 AS u(k, e, h, c, r)
             ORDER BY k
             ON CONFLICT DO NOTHING
             RETURNING idempotency_key",
        )
        .bind(tenant)
        .bind(claims.iter().map(|c| c.key.clone()).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.event_id).collect::<Vec<_>>())
        .bind(
            claims
                .iter()
                .map(|c| c.body_hash.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            claims
                .iter()
                .map(|c| c.correlation_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(claims.iter().map(|c| c.reservation).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        let inserted: HashSet<String> = inserted.into_iter().collect();

        let taken: Vec<String> = claims
            .iter()
            .filter(|c| !inserted.contains(&c.key))
            .map(|c| c.key.clone())
            .collect();
        let mut seen: HashMap<String, (Uuid, Vec<u8>, String)> = HashMap::new();
        if !taken.is_empty() {
            // The INSERT waited for any transaction holding these keys, so
            // this statement's snapshot sees what that one committed.
            let rows: Vec<TakenKey> = sqlx::query_as(
                "SELECT idempotency_key, event_id, body_hash, correlation_id FROM ingest_keys
                 WHERE tenant_id = $1 AND idempotency_key = ANY($2)",
            )
            .bind(tenant)
            .bind(&taken)
            .fetch_all(&mut *tx)
            .await?;
            seen.extend(rows.into_iter().map(|r| {
                (
                    r.idempotency_key,
                    (r.event_id, r.body_hash, r.correlation_id),
                )
            }));
        }

        let answers = claims
            .iter()
            .map(|c| match seen.get(&c.key) {
                None => Claimed::New,
                Some((event_id, hash, correlation_id)) if *hash == c.body_hash => {
                    Claimed::Duplicate {
                        event_id: *event_id,
                        correlation_id: correlation_id.clone(),
                    }
                }
                Some((event_id, _, _)) => Claimed::Conflict {
                    event_id: *event_id,
                },
            })
            .collect();
        Ok((answers, Reservation { tx, tenant }))
    }
}
