//! The gateway's idempotency keys.
//!
//! Keys are reserved in a transaction that stays open while the events are
//! published; it commits only once the broker has acked them, and drops the
//! keys whose publish failed, so a rejected or failed publish leaves nothing
//! behind. A key stays a duplicate for as long as its row lives, far beyond
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
    /// in order. Events that reached the detector straight from NATS with
    /// the same key count as seen.
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
            "INSERT INTO ingest_keys (tenant_id, idempotency_key, event_id, body_hash, correlation_id)
             SELECT $1, k, e, h, c FROM UNNEST($2::text[], $3::uuid[], $4::bytea[], $5::text[])
                 AS u(k, e, h, c)
             ORDER BY k
             ON CONFLICT DO NOTHING
             RETURNING idempotency_key",
        )
        .bind(tenant)
        .bind(claims.iter().map(|c| c.key.clone()).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.event_id).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.body_hash.clone()).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.correlation_id.clone()).collect::<Vec<_>>())
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
            let rows: Vec<(String, Uuid, Vec<u8>, String)> = sqlx::query_as(
                "SELECT idempotency_key, event_id, body_hash, correlation_id FROM ingest_keys
                 WHERE tenant_id = $1 AND idempotency_key = ANY($2)",
            )
            .bind(tenant)
            .bind(&taken)
            .fetch_all(&mut *tx)
            .await?;
            seen.extend(rows.into_iter().map(|(k, e, h, c)| (k, (e, h, c))));
        }
        if !inserted.is_empty() {
            // Keys that arrived through NATS, straight to the detector. The
            // event id is derived from the tenant and the key, so looking up
            // by id alone is exact (and uses the unique index whatever the
            // planner knows of the tenant); the tenant check keeps isolation.
            let ids: Vec<Uuid> = claims
                .iter()
                .filter(|c| inserted.contains(&c.key))
                .map(|c| c.event_id)
                .collect();
            let rows: Vec<(Uuid, String, Uuid, Vec<u8>, String)> = sqlx::query_as(
                "SELECT tenant_id, idempotency_key, id, body_hash, correlation_id FROM events
                 WHERE id = ANY($1)",
            )
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
            seen.extend(
                rows.into_iter()
                    .filter(|r| r.0 == tenant)
                    .map(|(_, k, e, h, c)| (k, (e, h, c))),
            );
        }

        let mut answers = Vec::with_capacity(claims.len());
        let mut release = Vec::new();
        for c in claims {
            answers.push(match seen.get(&c.key) {
                None => Claimed::New,
                Some((event_id, hash, correlation_id)) => {
                    if inserted.contains(&c.key) {
                        // Our reservation of a key the detector already has.
                        release.push(c.key.clone());
                    }
                    if *hash == c.body_hash {
                        Claimed::Duplicate {
                            event_id: *event_id,
                            correlation_id: correlation_id.clone(),
                        }
                    } else {
                        Claimed::Conflict {
                            event_id: *event_id,
                        }
                    }
                }
            });
        }
        if !release.is_empty() {
            sqlx::query(
                "DELETE FROM ingest_keys WHERE tenant_id = $1 AND idempotency_key = ANY($2)",
            )
            .bind(tenant)
            .bind(&release)
            .execute(&mut *tx)
            .await?;
        }
        Ok((answers, Reservation { tx, tenant }))
    }
}
