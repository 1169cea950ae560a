//! The one arbiter of idempotency keys: the detector's side.
//!
//! Every event the detector persists first takes (or finds) its key's row in
//! `ingest_keys`, the table the gateway reserves keys in. An `INSERT … ON
//! CONFLICT DO NOTHING` waits for any transaction holding the key (a gateway
//! publishing it), so whichever path commits the key first decides the body,
//! and the other body is refused on both paths.
//!
//! The row also says whether the key's event is stored: the events table,
//! partitioned by time, has no uniqueness of its own over keys. An event is
//! stored only by the transaction that took its key's row now, or that
//! turned the row's `stored` from false to true (a gateway reservation, or
//! a NATS event of the same body as that reservation); every other use of
//! the key is a duplicate.

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::StoreError;

/// One event's use of its key, as the arbiter sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyUse<'a> {
    pub tenant_id: Uuid,
    pub idempotency_key: &'a str,
    pub id: Uuid,
    pub body_hash: &'a [u8],
    pub correlation_id: &'a str,
    /// The gateway's reservation, on events it published.
    pub reservation: Option<Uuid>,
}

/// What the arbiter decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The key is this event's and its event is not stored yet: store it.
    Store,
    /// The key is this event's (held with the same body, or this very
    /// reservation) and its event is stored already.
    Duplicate,
    /// The key is held with another body.
    Conflict,
    /// A gateway publish whose reservation the key no longer holds: the
    /// gateway gave up on it and answered 503, so it must not be stored.
    Abandoned,
}

const TAKE: &str = "
INSERT INTO ingest_keys (tenant_id, idempotency_key, event_id, body_hash, correlation_id, reservation,
    stored)
SELECT *, reservation IS NULL
FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::bytea[], $5::text[], $6::uuid[])
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

/// Marks stored the keys whose event is not stored yet, locking them in
/// key order; returns those it marked. A concurrent transaction marking the
/// same key waits here, then finds it stored.
const MARK: &str = "
WITH mine AS (
    SELECT k.tenant_id, k.idempotency_key
    FROM ingest_keys k
    JOIN UNNEST($1::uuid[], $2::text[]) AS u(tenant_id, idempotency_key)
      ON k.tenant_id = u.tenant_id AND k.idempotency_key = u.idempotency_key
    WHERE NOT k.stored
    ORDER BY 1, 2
    FOR UPDATE OF k)
UPDATE ingest_keys k SET stored = true
FROM mine
WHERE k.tenant_id = mine.tenant_id AND k.idempotency_key = mine.idempotency_key
RETURNING k.tenant_id, k.idempotency_key";

type Key = (Uuid, String);

/// A key this transaction took.
#[derive(sqlx::FromRow)]
struct TakenRow {
    tenant_id: Uuid,
    idempotency_key: String,
}

/// A key's row as another transaction left it.
#[derive(sqlx::FromRow)]
struct HeldRow {
    tenant_id: Uuid,
    idempotency_key: String,
    body_hash: Vec<u8>,
    reservation: Option<Uuid>,
}

/// What a key's row holds: the body's hash and the gateway's reservation.
type Holding = (Vec<u8>, Option<Uuid>);

/// Settles the keys of `evs` (sorted by tenant and key, so concurrent
/// transactions lock in one order); one verdict per event, in order.
pub(crate) async fn settle(
    tx: &mut PgConnection,
    evs: &[KeyUse<'_>],
) -> Result<Vec<Verdict>, StoreError> {
    // A key repeated inside the batch is settled by its first occurrence.
    let mut first: HashMap<Key, usize> = HashMap::new();
    let mut claims: Vec<&KeyUse<'_>> = Vec::new();
    for (i, e) in evs.iter().enumerate() {
        first
            .entry((e.tenant_id, e.idempotency_key.to_owned()))
            .or_insert_with(|| {
                claims.push(e);
                i
            });
    }
    let taken: Vec<TakenRow> = sqlx::query_as(TAKE)
        .bind(claims.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
        .bind(
            claims
                .iter()
                .map(|e| e.idempotency_key.to_owned())
                .collect::<Vec<_>>(),
        )
        .bind(claims.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(
            claims
                .iter()
                .map(|e| e.body_hash.to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(
            claims
                .iter()
                .map(|e| e.correlation_id.to_owned())
                .collect::<Vec<_>>(),
        )
        .bind(claims.iter().map(|e| e.reservation).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    let taken: std::collections::HashSet<Key> = taken
        .into_iter()
        .map(|r| (r.tenant_id, r.idempotency_key))
        .collect();

    let others: Vec<&&KeyUse<'_>> = claims
        .iter()
        .filter(|e| !taken.contains(&(e.tenant_id, e.idempotency_key.to_owned())))
        .collect();
    let mut held: HashMap<Key, Holding> = HashMap::new();
    if !others.is_empty() {
        // The INSERT waited for whoever held these keys; this statement's
        // snapshot sees what they committed.
        let rows: Vec<HeldRow> = sqlx::query_as(HELD)
            .bind(others.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
            .bind(
                others
                    .iter()
                    .map(|e| e.idempotency_key.to_owned())
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&mut *tx)
            .await?;
        held.extend(rows.into_iter().map(|r| {
            (
                (r.tenant_id, r.idempotency_key),
                (r.body_hash, r.reservation),
            )
        }));
    }

    // Who holds each key now: the row found, or the first claim that took
    // it. A gateway publish that took a key finds its reservation rolled
    // back: the row only served to wait for that transaction, and goes.
    let mut holder: HashMap<Key, Option<Holding>> = HashMap::new();
    let mut release: Vec<Key> = Vec::new();
    for e in &claims {
        let key = (e.tenant_id, e.idempotency_key.to_owned());
        let now_held = if taken.contains(&key) {
            if e.reservation.is_some() {
                release.push(key.clone());
                None
            } else {
                Some((e.body_hash.to_vec(), None))
            }
        } else {
            held.get(&key).cloned()
        };
        holder.insert(key, now_held);
    }
    if !release.is_empty() {
        let (tenants, keys): (Vec<Uuid>, Vec<String>) = release.into_iter().unzip();
        sqlx::query(RELEASE)
            .bind(tenants)
            .bind(keys)
            .execute(&mut *tx)
            .await?;
    }

    let mut verdicts: Vec<Verdict> = evs
        .iter()
        .map(|e| {
            let key = (e.tenant_id, e.idempotency_key.to_owned());
            match (e.reservation, holder.get(&key).cloned().flatten()) {
                // A gateway publish is stored only under its own reservation.
                (Some(ours), Some((_, Some(theirs)))) if ours == theirs => Ok(Verdict::Store),
                (Some(_), _) => Ok(Verdict::Abandoned),
                (None, Some((hash, _))) if hash == e.body_hash => Ok(Verdict::Store),
                (None, Some(_)) => Ok(Verdict::Conflict),
                // Held a moment ago and gone now (a released reservation):
                // the key is free; the next delivery takes it.
                (None, None) => Err(StoreError::Contended(format!(
                    "idempotency key {:?} changed hands during the batch",
                    e.idempotency_key
                ))),
            }
        })
        .collect::<Result<_, _>>()?;
    one_store_per_key(tx, evs, &taken, &mut verdicts).await?;
    Ok(verdicts)
}

/// Of the uses that may store their event, keeps [`Verdict::Store`] for
/// the first use of each key whose row this transaction took (a NATS
/// event's new key) or marks stored now; the others are duplicates.
async fn one_store_per_key(
    tx: &mut PgConnection,
    evs: &[KeyUse<'_>],
    taken: &std::collections::HashSet<Key>,
    verdicts: &mut [Verdict],
) -> Result<(), StoreError> {
    let mut first: HashMap<Key, usize> = HashMap::new();
    for (i, e) in evs.iter().enumerate() {
        if verdicts[i] != Verdict::Store {
            continue;
        }
        match first.entry((e.tenant_id, e.idempotency_key.to_owned())) {
            std::collections::hash_map::Entry::Occupied(_) => verdicts[i] = Verdict::Duplicate,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(i);
            }
        }
    }
    let to_mark: Vec<&Key> = first.keys().filter(|k| !taken.contains(*k)).collect();
    if to_mark.is_empty() {
        return Ok(());
    }
    let marked: Vec<TakenRow> = sqlx::query_as(MARK)
        .bind(to_mark.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(to_mark.iter().map(|k| k.1.clone()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    let marked: std::collections::HashSet<Key> = marked
        .into_iter()
        .map(|r| (r.tenant_id, r.idempotency_key))
        .collect();
    for key in to_mark {
        if !marked.contains(key) {
            verdicts[first[key]] = Verdict::Duplicate;
        }
    }
    Ok(())
}
