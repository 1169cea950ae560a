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
    pub tenant: Uuid,
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
    tenant_id: Uuid,
    idempotency_key: String,
    event_id: Uuid,
    body_hash: Vec<u8>,
    correlation_id: String,
}

/// Open reservations of new keys.
#[derive(Debug)]
pub struct Reservation {
    tx: Transaction<'static, Postgres>,
}

impl Reservation {
    /// Makes the reservations permanent, except for `failed` keys (tenant
    /// and key, whose publish did not go through), which are released.
    ///
    /// # Errors
    /// On database failure; then no key is reserved.
    pub async fn commit(mut self, failed: &[(Uuid, String)]) -> Result<(), StoreError> {
        if !failed.is_empty() {
            let (tenants, keys): (Vec<Uuid>, Vec<String>) = failed.iter().cloned().unzip();
            sqlx::query(
                "DELETE FROM ingest_keys k
                 USING UNNEST($1::uuid[], $2::text[]) AS f(t, key)
                 WHERE k.tenant_id = f.t AND k.idempotency_key = f.key",
            )
            .bind(tenants)
            .bind(keys)
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
    /// Reserves `claims` (distinct tenant and key pairs, of one tenant or of
    /// several: the gateway reserves a group of concurrent requests in one
    /// statement); one answer per claim, in order. Keys of events that
    /// reached the detector straight from NATS have their row too, so both
    /// paths see each other's keys.
    ///
    /// # Errors
    /// On database failure; nothing is reserved then.
    pub async fn reserve_keys(
        &self,
        claims: &[KeyClaim],
    ) -> Result<(Vec<Claimed>, Reservation), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Rows are taken in key order, so two reservations sharing keys
        // wait for each other instead of deadlocking.
        let inserted: Vec<(Uuid, String)> = sqlx::query_as(
            "INSERT INTO ingest_keys
                 (tenant_id, idempotency_key, event_id, body_hash, correlation_id, reservation)
             SELECT t, k, e, h, c, r
             FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::bytea[], $5::text[], $6::uuid[])
                 AS u(t, k, e, h, c, r)
             ORDER BY t, k
             ON CONFLICT DO NOTHING
             RETURNING tenant_id, idempotency_key",
        )
        .bind(claims.iter().map(|c| c.tenant).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.key.as_str()).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.event_id).collect::<Vec<_>>())
        .bind(
            claims
                .iter()
                .map(|c| c.body_hash.as_slice())
                .collect::<Vec<_>>(),
        )
        .bind(
            claims
                .iter()
                .map(|c| c.correlation_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(claims.iter().map(|c| c.reservation).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        let inserted: HashSet<(Uuid, String)> = inserted.into_iter().collect();

        let (taken_tenants, taken_keys): (Vec<Uuid>, Vec<&str>) = claims
            .iter()
            .filter(|c| !inserted.contains(&(c.tenant, c.key.clone())))
            .map(|c| (c.tenant, c.key.as_str()))
            .unzip();
        let mut seen: HashMap<(Uuid, String), (Uuid, Vec<u8>, String)> = HashMap::new();
        if !taken_keys.is_empty() {
            // The INSERT waited for any transaction holding these keys, so
            // this statement's snapshot sees what that one committed.
            let rows: Vec<TakenKey> = sqlx::query_as(
                "SELECT k.tenant_id, k.idempotency_key, k.event_id, k.body_hash, k.correlation_id
                 FROM ingest_keys k
                 JOIN UNNEST($1::uuid[], $2::text[]) AS f(t, key)
                     ON k.tenant_id = f.t AND k.idempotency_key = f.key",
            )
            .bind(taken_tenants)
            .bind(taken_keys)
            .fetch_all(&mut *tx)
            .await?;
            seen.extend(rows.into_iter().map(|r| {
                (
                    (r.tenant_id, r.idempotency_key),
                    (r.event_id, r.body_hash, r.correlation_id),
                )
            }));
        }

        let answers = claims
            .iter()
            .map(|c| match seen.get(&(c.tenant, c.key.clone())) {
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
        Ok((answers, Reservation { tx }))
    }
}
