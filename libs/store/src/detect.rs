//! The detector's batch transaction: persist events, open or update
//! incidents, auto-resolve, and write the outbox, all or nothing.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::arbiter::{self, KeyUse, Verdict};
use crate::{Store, StoreError};

/// One validated event to persist.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub idempotency_key: String,
    pub workflow_id: String,
    pub event_type: &'static str,
    pub is_failure: bool,
    pub is_success: bool,
    pub occurred_at: DateTime<Utc>,
    pub workflow_run_id: Option<String>,
    pub step: Option<String>,
    pub vendor: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub http_status: Option<i32>,
    pub retryable: Option<bool>,
    pub attempt: Option<i32>,
    pub correlation_id: String,
    /// The failure signature, for failures.
    pub signature: Option<String>,
    pub body_hash: Vec<u8>,
    pub source: &'static str,
    /// The gateway's reservation the message carries (HTTP events only).
    pub reservation: Option<Uuid>,
    pub metadata: Option<String>,
    /// For failures whose rule says so: open an incident only once this many
    /// failures of the signature fall within this many seconds.
    pub open_after: Option<(i64, f64)>,
}

/// Settings of the incident rules applied in the batch.
#[derive(Debug, Clone, Copy)]
pub struct DetectSettings {
    pub reopen_window_secs: u64,
    pub auto_resolve_successes: u32,
}

/// A batch of events to persist.
#[derive(Debug, Default)]
pub struct DetectBatch {
    pub events: Vec<NewEvent>,
}

/// An incident opened (or re-opened) by the batch.
#[derive(Debug, Clone)]
pub struct OpenedIncident {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub signature: String,
    pub workflow_id: String,
    pub error_code: String,
    pub vendor: Option<String>,
    pub step: Option<String>,
    pub reopened: bool,
    pub correlation_id: String,
}

/// A message to publish after commit.
#[derive(Debug, Clone)]
pub struct NewOutbox {
    pub tenant_id: Uuid,
    pub subject: String,
    pub msg_id: String,
    pub payload: serde_json::Value,
    pub correlation_id: Option<String>,
}

/// What the batch did.
#[derive(Debug, Default)]
pub struct DetectOutcome {
    /// Indexes (into the batch) of events persisted now.
    pub inserted: Vec<usize>,
    /// Indexes of events whose key was already persisted with the same body.
    pub duplicates: Vec<usize>,
    /// Indexes of events whose key was already persisted with another body.
    pub conflicts: Vec<usize>,
    /// Indexes of gateway publishes the gateway gave up on (it answered
    /// 503): not stored.
    pub abandoned: Vec<usize>,
    pub opened: Vec<OpenedIncident>,
    pub updated_incidents: usize,
    pub resolved: Vec<Uuid>,
    /// Outbox row ids written by the batch, for the relay's fast path.
    pub outbox_ids: Vec<i64>,
}

#[derive(Debug)]
struct SignatureGroup {
    tenant_id: Uuid,
    signature: String,
    workflow_id: String,
    error_code: String,
    vendor: Option<String>,
    step: Option<String>,
    count: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    correlation_id: String,
    open_after: Option<(i64, f64)>,
}

/// An incident row a statement touched: its id and (tenant, signature).
#[derive(sqlx::FromRow)]
struct IncidentKeyRow {
    id: Uuid,
    tenant_id: Uuid,
    signature: String,
}

/// An event already stored under a key of the batch.
#[derive(sqlx::FromRow)]
struct StoredEventRow {
    id: Uuid,
    body_hash: Vec<u8>,
}

/// An incident whose success streak the batch advanced, with its status
/// before and after.
#[derive(sqlx::FromRow)]
struct StreakRow {
    id: Uuid,
    tenant_id: Uuid,
    status: String,
    before: String,
}

/// A gated signature's failures inside its `open_after` window.
#[derive(sqlx::FromRow)]
struct GateRow {
    tenant_id: Uuid,
    signature: String,
    open: bool,
    recent: i64,
    first: Option<DateTime<Utc>>,
}

const INSERT_EVENTS: &str = "
INSERT INTO events (id, tenant_id, idempotency_key, workflow_id, event_type, occurred_at,
    workflow_run_id, step, vendor, error_code, error_message, http_status, retryable, attempt,
    correlation_id, signature, body_hash, source, metadata)
SELECT id, tenant_id, idempotency_key, workflow_id, event_type, occurred_at,
    workflow_run_id, step, vendor, error_code, error_message, http_status, retryable, attempt,
    correlation_id, signature, body_hash, source, metadata::jsonb
FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int[], $13::bool[],
    $14::int[], $15::text[], $16::text[], $17::bytea[], $18::text[], $19::text[])
    AS u(id, tenant_id, idempotency_key, workflow_id, event_type, occurred_at,
    workflow_run_id, step, vendor, error_code, error_message, http_status, retryable, attempt,
    correlation_id, signature, body_hash, source, metadata)
ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
RETURNING id";

const REOPEN: &str = "
WITH candidates AS (
    SELECT DISTINCT ON (i.tenant_id, i.signature) i.id
    FROM incidents i
    JOIN UNNEST($1::uuid[], $2::text[]) AS u(tenant_id, signature)
      ON i.tenant_id = u.tenant_id AND i.signature = u.signature
    WHERE i.status = 'RESOLVED'
      AND i.resolved_at > now() - make_interval(secs => $3)
    ORDER BY i.tenant_id, i.signature, i.resolved_at DESC
)
UPDATE incidents i
SET status = 'NEW', resolved_at = NULL, resolved_by = NULL, reopened_at = now(),
    reopen_count = i.reopen_count + 1, success_streak = 0, updated_at = now()
FROM candidates c
WHERE i.id = c.id
  AND NOT EXISTS (SELECT 1 FROM incidents o
                  WHERE o.tenant_id = i.tenant_id AND o.signature = i.signature
                    AND o.status <> 'RESOLVED')
RETURNING i.id, i.tenant_id, i.signature";

const UPSERT_INCIDENTS: &str = "
INSERT INTO incidents (id, tenant_id, signature, workflow_id, error_code, vendor, step, status,
    event_count, first_seen, last_seen)
SELECT id, tenant_id, signature, workflow_id, error_code, vendor, step, 'NEW',
    event_count, first_seen, last_seen
FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::bigint[], $9::timestamptz[], $10::timestamptz[])
    AS u(id, tenant_id, signature, workflow_id, error_code, vendor, step, event_count,
    first_seen, last_seen)
ON CONFLICT (tenant_id, signature) WHERE status <> 'RESOLVED' DO UPDATE
SET event_count = incidents.event_count + EXCLUDED.event_count,
    first_seen = LEAST(incidents.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(incidents.last_seen, EXCLUDED.last_seen),
    vendor = COALESCE(EXCLUDED.vendor, incidents.vendor),
    step = COALESCE(EXCLUDED.step, incidents.step),
    success_streak = 0,
    updated_at = now()
RETURNING id, tenant_id, signature";

const COUNT_SUCCESSES: &str = "
WITH s AS (
    SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
        AS u(tenant_id, workflow_id, step, occurred_at)
), hits AS (
    SELECT i.id, count(*)::int AS n
    FROM incidents i
    JOIN s ON i.tenant_id = s.tenant_id AND i.workflow_id = s.workflow_id
          AND (s.step IS NULL OR i.step IS NOT DISTINCT FROM s.step)
          AND s.occurred_at > i.last_seen
    WHERE i.status <> 'RESOLVED'
    GROUP BY i.id
    ORDER BY i.id
)
UPDATE incidents i
SET success_streak = i.success_streak + hits.n,
    status = CASE WHEN $5 > 0 AND i.success_streak + hits.n >= $5 THEN 'RESOLVED' ELSE i.status END,
    resolved_at = CASE WHEN $5 > 0 AND i.success_streak + hits.n >= $5 THEN now() ELSE i.resolved_at END,
    resolved_by = CASE WHEN $5 > 0 AND i.success_streak + hits.n >= $5 THEN 'auto-resolve' ELSE i.resolved_by END,
    updated_at = now()
FROM hits
WHERE i.id = hits.id
RETURNING i.id, i.tenant_id, i.status, (SELECT status FROM incidents p WHERE p.id = i.id) AS before";

/// Gated signatures that could open a first incident: no open incident and
/// none resolved inside the re-open window (a failure there re-opens it at
/// once, the flapping guard), so every failure in the window is uncounted.
const HELD_BACK: &str = "
SELECT u.tenant_id, u.signature, false AS open,
    (SELECT count(*) FROM events e
     WHERE e.tenant_id = u.tenant_id AND e.signature = u.signature
       AND e.occurred_at > u.since) AS recent,
    (SELECT min(e.occurred_at) FROM events e
     WHERE e.tenant_id = u.tenant_id AND e.signature = u.signature
       AND e.occurred_at > u.since) AS first
FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) AS u(tenant_id, signature, since)
WHERE NOT EXISTS (SELECT 1 FROM incidents i
                  WHERE i.tenant_id = u.tenant_id AND i.signature = u.signature
                    AND (i.status <> 'RESOLVED'
                         OR i.resolved_at > now() - make_interval(secs => $4)))";

/// Serialises the `open_after` decision per signature across concurrent
/// transactions, in (tenant, signature) order so they cannot deadlock: the
/// second waits for the first to commit and then sees its incident and
/// events, so neither holds back nor counts a failure twice.
const LOCK_GATED: &str = "
SELECT count(pg_advisory_xact_lock(k)) FROM (
    SELECT hashtextextended(u.tenant_id::text || u.signature, 0) AS k
    FROM UNNEST($1::uuid[], $2::text[]) AS u(tenant_id, signature)
    ORDER BY u.tenant_id, u.signature
) locks";

const TRANSITIONS: &str = "
INSERT INTO incident_transitions (tenant_id, incident_id, from_status, to_status, actor, reason)
SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])";

const INSERT_OUTBOX: &str = "
INSERT INTO outbox (tenant_id, subject, msg_id, payload, correlation_id)
SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::text[])
ON CONFLICT (msg_id) DO NOTHING
RETURNING id";

impl Store {
    /// Persists a batch of events and applies the incident rules, in one
    /// transaction. Only events persisted now count towards incidents, so a
    /// redelivered batch changes nothing. `outbox_for` builds the message to
    /// publish for each incident the batch opens.
    ///
    /// # Errors
    /// On database failure; nothing is written then.
    pub async fn detect_batch(
        &self,
        batch: &DetectBatch,
        settings: DetectSettings,
        outbox_for: &(dyn Fn(&OpenedIncident) -> NewOutbox + Sync),
    ) -> Result<DetectOutcome, StoreError> {
        let mut out = DetectOutcome::default();
        if batch.events.is_empty() {
            return Ok(out);
        }
        // Lock rows in a fixed order (by tenant and key) across concurrent
        // detectors, so they queue instead of deadlocking.
        let mut order: Vec<usize> = (0..batch.events.len()).collect();
        order.sort_by(|&a, &b| {
            let (ea, eb) = (&batch.events[a], &batch.events[b]);
            (ea.tenant_id, &ea.idempotency_key).cmp(&(eb.tenant_id, &eb.idempotency_key))
        });
        let sorted: Vec<&NewEvent> = order.iter().map(|&i| &batch.events[i]).collect();

        let mut tx = self.pool.begin().await?;
        let uses: Vec<KeyUse<'_>> = sorted
            .iter()
            .map(|e| KeyUse {
                tenant_id: e.tenant_id,
                idempotency_key: &e.idempotency_key,
                id: e.id,
                body_hash: &e.body_hash,
                correlation_id: &e.correlation_id,
                reservation: e.reservation,
            })
            .collect();
        let verdicts = arbiter::settle(&mut tx, &uses).await?;
        let mut evs: Vec<&NewEvent> = Vec::with_capacity(sorted.len());
        let mut kept: Vec<usize> = Vec::with_capacity(sorted.len());
        for (pos, verdict) in verdicts.into_iter().enumerate() {
            match verdict {
                Verdict::Persist => {
                    evs.push(sorted[pos]);
                    kept.push(order[pos]);
                }
                Verdict::Conflict => out.conflicts.push(order[pos]),
                Verdict::Abandoned => out.abandoned.push(order[pos]),
            }
        }
        let inserted_ids: Vec<Uuid> = sqlx::query_scalar(INSERT_EVENTS)
            .bind(evs.iter().map(|e| e.id).collect::<Vec<_>>())
            .bind(evs.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
            .bind(
                evs.iter()
                    .map(|e| e.idempotency_key.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(
                evs.iter()
                    .map(|e| e.workflow_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(evs.iter().map(|e| e.event_type).collect::<Vec<_>>())
            .bind(evs.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
            .bind(
                evs.iter()
                    .map(|e| e.workflow_run_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(evs.iter().map(|e| e.step.clone()).collect::<Vec<_>>())
            .bind(evs.iter().map(|e| e.vendor.clone()).collect::<Vec<_>>())
            .bind(evs.iter().map(|e| e.error_code.clone()).collect::<Vec<_>>())
            .bind(
                evs.iter()
                    .map(|e| e.error_message.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(evs.iter().map(|e| e.http_status).collect::<Vec<_>>())
            .bind(evs.iter().map(|e| e.retryable).collect::<Vec<_>>())
            .bind(evs.iter().map(|e| e.attempt).collect::<Vec<_>>())
            .bind(
                evs.iter()
                    .map(|e| e.correlation_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(evs.iter().map(|e| e.signature.clone()).collect::<Vec<_>>())
            .bind(evs.iter().map(|e| e.body_hash.clone()).collect::<Vec<_>>())
            .bind(evs.iter().map(|e| e.source).collect::<Vec<_>>())
            .bind(evs.iter().map(|e| e.metadata.clone()).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
        let inserted: HashSet<Uuid> = inserted_ids.into_iter().collect();

        // Keys that were already there: same body is a duplicate, another
        // body a conflict. A key repeated inside the batch is inserted once.
        let mut claimed = HashSet::new();
        let mut seen_ids = Vec::new();
        for (pos, e) in evs.iter().enumerate() {
            let idx = kept[pos];
            if inserted.contains(&e.id) && claimed.insert(e.id) {
                out.inserted.push(idx);
            } else {
                seen_ids.push((idx, e.id, e.body_hash.clone()));
            }
        }
        if !seen_ids.is_empty() {
            let ids: Vec<Uuid> = seen_ids.iter().map(|s| s.1).collect();
            let stored: Vec<StoredEventRow> =
                sqlx::query_as("SELECT id, body_hash FROM events WHERE id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await?;
            let stored: BTreeMap<Uuid, Vec<u8>> =
                stored.into_iter().map(|r| (r.id, r.body_hash)).collect();
            for (idx, id, hash) in seen_ids {
                if stored.get(&id).is_some_and(|h| *h != hash) {
                    out.conflicts.push(idx);
                } else {
                    out.duplicates.push(idx);
                }
            }
        }
        out.inserted.sort_unstable();
        out.conflicts.sort_unstable();

        let mut groups = group_failures(batch, &out.inserted);
        apply_open_after(&mut tx, &mut groups, settings.reopen_window_secs).await?;
        if !groups.is_empty() {
            let (tenants, sigs): (Vec<Uuid>, Vec<String>) = groups
                .iter()
                .map(|g| (g.tenant_id, g.signature.clone()))
                .unzip();
            let reopened: Vec<IncidentKeyRow> = sqlx::query_as(REOPEN)
                .bind(&tenants)
                .bind(&sigs)
                .bind(settings.reopen_window_secs as f64)
                .fetch_all(&mut *tx)
                .await?;
            let reopened: BTreeMap<(Uuid, String), Uuid> = reopened
                .into_iter()
                .map(|r| ((r.tenant_id, r.signature), r.id))
                .collect();

            let fresh_ids: Vec<Uuid> = groups.iter().map(|_| Uuid::now_v7()).collect();
            let rows: Vec<IncidentKeyRow> = sqlx::query_as(UPSERT_INCIDENTS)
                .bind(&fresh_ids)
                .bind(&tenants)
                .bind(&sigs)
                .bind(
                    groups
                        .iter()
                        .map(|g| g.workflow_id.clone())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    groups
                        .iter()
                        .map(|g| g.error_code.clone())
                        .collect::<Vec<_>>(),
                )
                .bind(groups.iter().map(|g| g.vendor.clone()).collect::<Vec<_>>())
                .bind(groups.iter().map(|g| g.step.clone()).collect::<Vec<_>>())
                .bind(groups.iter().map(|g| g.count).collect::<Vec<_>>())
                .bind(groups.iter().map(|g| g.first_seen).collect::<Vec<_>>())
                .bind(groups.iter().map(|g| g.last_seen).collect::<Vec<_>>())
                .fetch_all(&mut *tx)
                .await?;
            let fresh: HashSet<Uuid> = fresh_ids.into_iter().collect();
            let by_key: BTreeMap<(Uuid, String), &SignatureGroup> = groups
                .iter()
                .map(|g| ((g.tenant_id, g.signature.clone()), g))
                .collect();
            for IncidentKeyRow {
                id,
                tenant_id,
                signature,
            } in rows
            {
                let key = (tenant_id, signature);
                let was_reopened = reopened.get(&key) == Some(&id);
                if !fresh.contains(&id) && !was_reopened {
                    out.updated_incidents += 1;
                    continue;
                }
                let Some(g) = by_key.get(&key) else { continue };
                out.opened.push(OpenedIncident {
                    id,
                    tenant_id,
                    signature: key.1,
                    workflow_id: g.workflow_id.clone(),
                    error_code: g.error_code.clone(),
                    vendor: g.vendor.clone(),
                    step: g.step.clone(),
                    reopened: was_reopened,
                    correlation_id: g.correlation_id.clone(),
                });
            }
        }

        let successes: Vec<&NewEvent> = out
            .inserted
            .iter()
            .map(|&i| &batch.events[i])
            .filter(|e| e.is_success)
            .collect();
        let mut resolved_rows: Vec<(Uuid, Uuid, String)> = Vec::new();
        if !successes.is_empty() {
            let rows: Vec<StreakRow> = sqlx::query_as(COUNT_SUCCESSES)
                .bind(successes.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
                .bind(
                    successes
                        .iter()
                        .map(|e| e.workflow_id.clone())
                        .collect::<Vec<_>>(),
                )
                .bind(successes.iter().map(|e| e.step.clone()).collect::<Vec<_>>())
                .bind(successes.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
                .bind(i32::try_from(settings.auto_resolve_successes).unwrap_or(i32::MAX))
                .fetch_all(&mut *tx)
                .await?;
            for r in rows {
                if r.status == "RESOLVED" && r.before != "RESOLVED" {
                    resolved_rows.push((r.id, r.tenant_id, r.before));
                }
            }
        }

        write_transitions(&mut tx, &out.opened, &resolved_rows, settings).await?;
        out.resolved = resolved_rows.iter().map(|r| r.0).collect();

        if !out.opened.is_empty() {
            let msgs: Vec<NewOutbox> = out.opened.iter().map(outbox_for).collect();
            out.outbox_ids = sqlx::query_scalar(INSERT_OUTBOX)
                .bind(msgs.iter().map(|m| m.tenant_id).collect::<Vec<_>>())
                .bind(msgs.iter().map(|m| m.subject.clone()).collect::<Vec<_>>())
                .bind(msgs.iter().map(|m| m.msg_id.clone()).collect::<Vec<_>>())
                .bind(msgs.iter().map(|m| m.payload.clone()).collect::<Vec<_>>())
                .bind(
                    msgs.iter()
                        .map(|m| m.correlation_id.clone())
                        .collect::<Vec<_>>(),
                )
                .fetch_all(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}

/// The earliest failure in an `open_after` window, if any.
type FirstSeen = Option<DateTime<Utc>>;

/// Holds back the groups whose rule opens an incident only after N
/// failures in a window, while there is no open incident and fewer than N
/// failures (counting those just persisted) fall in the window; a group
/// that reaches N opens its incident with all of them counted.
///
/// Two detectors each holding part of the N-th failure may both hold back;
/// the next failure of the signature then opens the incident.
async fn apply_open_after(
    tx: &mut sqlx::PgConnection,
    groups: &mut Vec<SignatureGroup>,
    reopen_window_secs: u64,
) -> Result<(), StoreError> {
    let gated: Vec<&SignatureGroup> = groups.iter().filter(|g| g.open_after.is_some()).collect();
    if gated.is_empty() {
        return Ok(());
    }
    let since: Vec<DateTime<Utc>> = gated
        .iter()
        .map(|g| {
            let secs = g.open_after.map_or(0.0, |o| o.1);
            g.last_seen - chrono::Duration::milliseconds((secs * 1000.0) as i64)
        })
        .collect();
    let _: i64 = sqlx::query_scalar(LOCK_GATED)
        .bind(gated.iter().map(|g| g.tenant_id).collect::<Vec<_>>())
        .bind(
            gated
                .iter()
                .map(|g| g.signature.clone())
                .collect::<Vec<_>>(),
        )
        .fetch_one(&mut *tx)
        .await?;
    let rows: Vec<GateRow> = sqlx::query_as(HELD_BACK)
        .bind(gated.iter().map(|g| g.tenant_id).collect::<Vec<_>>())
        .bind(
            gated
                .iter()
                .map(|g| g.signature.clone())
                .collect::<Vec<_>>(),
        )
        .bind(since)
        .bind(reopen_window_secs as f64)
        .fetch_all(&mut *tx)
        .await?;
    let state: BTreeMap<(Uuid, String), (bool, i64, FirstSeen)> = rows
        .into_iter()
        .map(|r| ((r.tenant_id, r.signature), (r.open, r.recent, r.first)))
        .collect();
    groups.retain_mut(|g| {
        let Some((needed, _)) = g.open_after else {
            return true;
        };
        match state.get(&(g.tenant_id, g.signature.clone())) {
            Some((true, _, _)) | None => true,
            Some((false, recent, first)) if *recent >= needed => {
                g.count = *recent;
                if let Some(first) = first {
                    g.first_seen = g.first_seen.min(*first);
                }
                true
            }
            Some(_) => false,
        }
    });
    Ok(())
}

async fn write_transitions(
    tx: &mut sqlx::PgConnection,
    opened: &[OpenedIncident],
    resolved: &[(Uuid, Uuid, String)],
    settings: DetectSettings,
) -> Result<(), StoreError> {
    let mut tenants = Vec::new();
    let mut ids = Vec::new();
    let mut from: Vec<Option<String>> = Vec::new();
    let mut to = Vec::new();
    let mut actor = Vec::new();
    let mut reason = Vec::new();
    for o in opened {
        tenants.push(o.tenant_id);
        ids.push(o.id);
        from.push(o.reopened.then(|| "RESOLVED".to_owned()));
        to.push("NEW");
        actor.push("detector");
        reason.push(if o.reopened {
            format!(
                "failure within the re-open window ({}s) of the resolved incident",
                settings.reopen_window_secs
            )
        } else {
            "first failure of this signature".to_owned()
        });
    }
    for (id, tenant, before) in resolved {
        tenants.push(*tenant);
        ids.push(*id);
        from.push(Some(before.clone()));
        to.push("RESOLVED");
        actor.push("auto-resolve");
        reason.push(format!(
            "{} successes of the same step after the last failure",
            settings.auto_resolve_successes
        ));
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(TRANSITIONS)
        .bind(tenants)
        .bind(ids)
        .bind(from)
        .bind(to)
        .bind(actor)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Aggregates newly persisted failures by signature, sorted by (tenant,
/// signature) so concurrent detectors lock incidents in the same order.
fn group_failures(batch: &DetectBatch, inserted: &[usize]) -> Vec<SignatureGroup> {
    let mut groups: BTreeMap<(Uuid, String), SignatureGroup> = BTreeMap::new();
    for &i in inserted {
        let e = &batch.events[i];
        let (Some(sig), true) = (&e.signature, e.is_failure) else {
            continue;
        };
        let g = groups
            .entry((e.tenant_id, sig.clone()))
            .or_insert_with(|| SignatureGroup {
                tenant_id: e.tenant_id,
                signature: sig.clone(),
                workflow_id: e.workflow_id.clone(),
                error_code: e.error_code.clone().unwrap_or_default(),
                vendor: None,
                step: None,
                count: 0,
                first_seen: e.occurred_at,
                last_seen: e.occurred_at,
                correlation_id: e.correlation_id.clone(),
                open_after: e.open_after,
            });
        g.count += 1;
        g.first_seen = g.first_seen.min(e.occurred_at);
        if e.occurred_at >= g.last_seen {
            g.last_seen = e.occurred_at;
            g.vendor = e.vendor.clone().or(g.vendor.take());
            g.step = e.step.clone().or(g.step.take());
        }
        if g.vendor.is_none() {
            g.vendor = e.vendor.clone();
        }
        if g.step.is_none() {
            g.step = e.step.clone();
        }
    }
    groups.into_values().collect()
}
