//! The one arbiter of idempotency keys: the detector's side.
//!
//! Every event the detector persists first takes (or finds) its key's row in
//! `ingest_keys`, the table the gateway reserves keys in. An `INSERT … ON
//! CONFLICT DO NOTHING` waits for any transaction holding the key (a gateway
//! publishing it), so whichever path commits the key first decides the body,
//! and the other body is refused on both paths.

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::StoreError;
use crate::detect::NewEvent;

/// What the arbiter decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The key is this event's (new, or held with the same body): persist
    /// it; the events table then tells a first delivery from a repeat.
    Persist,
    /// The key is held with another body.
    Conflict,
    /// A gateway publish whose reservation the key no longer holds: the
    /// gateway gave up on it and answered 503, so it must not be stored.
    Abandoned,
}

const TAKE: &str = "
INSERT INTO ingest_keys (tenant_id, idempotency_key, event_id, body_hash, correlation_id, reservation)
SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::bytea[], $5::text[], $6::uuid[])
    AS u(tenant_id, idempotency_key, event_id, body_hash, correlation_id, reservation)
ORDER BY 1, 2
ON CONFLICT DO NOTHING
RETURNING tenant_id, idempotency_key";

const HELD: &str = "
SELECT k.tenant_id, k.idempotency_key, k.body_hash, k.reservation
FROM ingest_keys k
JOIN UNNEST($1::uuid[], $2::text[]) AS u(tenant_id, idempotency_key)
  ON k.tenant_id = u.tenant_id AND k.idempotency_key = u.idempotency_key";

/// Rows this transaction made for gateway publishes whose reservation was
/// rolled back: they only served to wait for that transaction.
const RELEASE: &str = "
DELETE FROM ingest_keys k
USING UNNEST($1::uuid[], $2::text[]) AS u(tenant_id, idempotency_key)
WHERE k.tenant_id = u.tenant_id AND k.idempotency_key = u.idempotency_key";

type Key = (Uuid, String);

/// Settles the keys of `evs` (sorted by tenant and key, so concurrent
/// transactions lock in one order); one verdict per event, in order.
pub(crate) async fn settle(
    tx: &mut PgConnection,
    evs: &[&NewEvent],
) -> Result<Vec<Verdict>, StoreError> {
    // A key repeated inside the batch is settled by its first occurrence.
    let mut first: HashMap<Key, usize> = HashMap::new();
    let mut claims: Vec<&NewEvent> = Vec::new();
    for (i, e) in evs.iter().enumerate() {
        first
            .entry((e.tenant_id, e.idempotency_key.clone()))
            .or_insert_with(|| {
                claims.push(e);
                i
            });
    }
    let taken: Vec<Key> = sqlx::query_as(TAKE)
        .bind(claims.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
        .bind(
            claims
                .iter()
                .map(|e| e.idempotency_key.clone())
                .collect::<Vec<_>>(),
        )
        .bind(claims.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(
            claims
                .iter()
                .map(|e| e.body_hash.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            claims
                .iter()
                .map(|e| e.correlation_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(claims.iter().map(|e| e.reservation).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    let taken: std::collections::HashSet<Key> = taken.into_iter().collect();

    let others: Vec<&&NewEvent> = claims
        .iter()
        .filter(|e| !taken.contains(&(e.tenant_id, e.idempotency_key.clone())))
        .collect();
    let mut held: HashMap<Key, (Vec<u8>, Option<Uuid>)> = HashMap::new();
    if !others.is_empty() {
        // The INSERT waited for whoever held these keys; this statement's
        // snapshot sees what they committed.
        let rows: Vec<(Uuid, String, Vec<u8>, Option<Uuid>)> = sqlx::query_as(HELD)
            .bind(others.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
            .bind(
                others
                    .iter()
                    .map(|e| e.idempotency_key.clone())
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&mut *tx)
            .await?;
        held.extend(rows.into_iter().map(|(t, k, h, r)| ((t, k), (h, r))));
    }

    let mut verdict_of: HashMap<Key, Verdict> = HashMap::new();
    let mut release: Vec<Key> = Vec::new();
    for e in &claims {
        let key = (e.tenant_id, e.idempotency_key.clone());
        let verdict = match (taken.contains(&key), e.reservation, held.get(&key)) {
            // Nobody held the key: ours, unless this is a gateway publish,
            // whose reservation must have been committed before it.
            (true, None, _) => Verdict::Persist,
            (true, Some(_), _) => {
                release.push(key.clone());
                Verdict::Abandoned
            }
            (false, Some(ours), Some((_, Some(theirs)))) if ours == *theirs => Verdict::Persist,
            (false, Some(_), _) => Verdict::Abandoned,
            (false, None, Some((hash, _))) if *hash == e.body_hash => Verdict::Persist,
            (false, None, Some(_)) => Verdict::Conflict,
            // Held a moment ago and gone now: only an abandoned reservation
            // is ever removed, so the key is free; the next delivery takes it.
            (false, None, None) => {
                return Err(StoreError::Contended(format!(
                    "idempotency key {:?} changed hands during the batch",
                    e.idempotency_key
                )));
            }
        };
        verdict_of.insert(key, verdict);
    }
    if !release.is_empty() {
        let (tenants, keys): (Vec<Uuid>, Vec<String>) = release.into_iter().unzip();
        sqlx::query(RELEASE)
            .bind(tenants)
            .bind(keys)
            .execute(&mut *tx)
            .await?;
    }

    Ok(evs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let key = (e.tenant_id, e.idempotency_key.clone());
            let verdict = verdict_of.get(&key).copied().unwrap_or(Verdict::Conflict);
            let repeat_of = first.get(&key).copied().unwrap_or(i);
            if repeat_of == i || evs[repeat_of].body_hash == e.body_hash {
                verdict
            } else {
                Verdict::Conflict
            }
        })
        .collect())
}
