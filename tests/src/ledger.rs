//! What a test sent, over HTTP and NATS, and its reconciliation against
//! the database and the dead letters at the end.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{DeadLetter, body_hash, dead_letter_of, dead_letters};

/// One HTTP answer about one event: what was sent and what came back.
#[derive(Debug, Clone)]
pub struct HttpRecord {
    pub tenant: uuid::Uuid,
    pub key: String,
    pub body: Value,
    /// The status, 0 when no answer came (connection lost, timeout).
    pub status: u16,
}

/// One message published straight to NATS.
#[derive(Debug, Clone)]
pub struct NatsRecord {
    pub tenant: uuid::Uuid,
    pub key: String,
    pub payload: bytes::Bytes,
    /// The events stream's sequence from the broker's ack; None when no ack
    /// came (the message may or may not have been stored).
    pub sequence: Option<u64>,
}

/// Everything sent, for the reconciliation at the end of a test.
#[derive(Debug, Default)]
pub struct Ledger {
    pub http: std::sync::Mutex<Vec<HttpRecord>>,
    pub nats: std::sync::Mutex<Vec<NatsRecord>>,
}

impl Ledger {
    /// Records an HTTP answer.
    pub fn http(&self, tenant: uuid::Uuid, key: &str, body: &Value, status: u16) {
        self.http.lock().unwrap().push(HttpRecord {
            tenant,
            key: key.to_owned(),
            body: body.clone(),
            status,
        });
    }

    /// Records a NATS publish.
    pub fn nats(
        &self,
        tenant: uuid::Uuid,
        key: &str,
        payload: bytes::Bytes,
        sequence: Option<u64>,
    ) {
        self.nats.lock().unwrap().push(NatsRecord {
            tenant,
            key: key.to_owned(),
            payload,
            sequence,
        });
    }
}

/// Compares everything sent against the database and the dead letters;
/// one line per discrepancy, empty when every answer told the truth:
///
/// * every `202`/`200` has its events row, holding the body that got it;
/// * a `409` has an events row holding another body;
/// * a key that was never accepted (every answer a rejection, nothing
///   published to NATS) left no events row and no `ingest_keys` row;
/// * every `ingest_keys` row has its events row (no key half-reserved);
/// * every events row is explained by an accepted answer or a NATS publish;
/// * every acked NATS message is stored with its body, or dead-lettered.
pub async fn reconcile(pool: &sqlx::PgPool, dead: &[DeadLetter], ledger: &Ledger) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    let events: Vec<(uuid::Uuid, String, Vec<u8>)> =
        sqlx::query_as("SELECT tenant_id, idempotency_key, body_hash FROM events")
            .fetch_all(pool)
            .await
            .expect("read events");
    let keys: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT tenant_id, idempotency_key FROM ingest_keys")
            .fetch_all(pool)
            .await
            .expect("read ingest_keys");
    let stored: HashMap<(uuid::Uuid, String), Vec<u8>> =
        events.into_iter().map(|(t, k, h)| ((t, k), h)).collect();
    let reserved: HashSet<(uuid::Uuid, String)> = keys.into_iter().collect();
    let http = ledger.http.lock().unwrap().clone();
    let nats = ledger.nats.lock().unwrap().clone();
    let mut explained: HashSet<(uuid::Uuid, String)> = HashSet::new();
    for r in &http {
        if matches!(r.status, 0 | 200 | 202 | 409) {
            explained.insert((r.tenant, r.key.clone()));
        }
    }
    for n in &nats {
        explained.insert((n.tenant, n.key.clone()));
    }
    let accepted: HashSet<(uuid::Uuid, String, Vec<u8>)> = http
        .iter()
        .filter(|r| matches!(r.status, 200 | 202))
        .map(|r| (r.tenant, r.key.clone(), body_hash(&r.body)))
        .collect();
    let mut problems = Vec::new();
    for r in &http {
        let id = (r.tenant, r.key.clone());
        let row = stored.get(&id);
        let hash = body_hash(&r.body);
        match r.status {
            0 => {}
            200 | 202 => match row {
                None => problems.push(format!(
                    "{} for key {:?} but no events row",
                    r.status, r.key
                )),
                Some(h) if *h != hash => problems.push(format!(
                    "{} for key {:?} but the events row holds another body",
                    r.status, r.key
                )),
                Some(_) => {}
            },
            409 => match row {
                Some(h) if *h == hash => problems.push(format!(
                    "409 for key {:?} yet the events row holds that very body",
                    r.key
                )),
                None => problems.push(format!(
                    "409 for key {:?} but no body is stored under it",
                    r.key
                )),
                Some(_) => {}
            },
            s => {
                if row == Some(&hash)
                    && !accepted.contains(&(r.tenant, r.key.clone(), hash.clone()))
                {
                    problems.push(format!("{s} for key {:?} yet its body was stored", r.key));
                }
                if !explained.contains(&id) {
                    if row.is_some() && row != Some(&hash) {
                        problems.push(format!("{s} for key {:?} left an events row", r.key));
                    }
                    if reserved.contains(&id) {
                        problems.push(format!("{s} for key {:?} left an ingest_keys row", r.key));
                    }
                }
            }
        }
    }
    for id in &reserved {
        if !stored.contains_key(id) {
            problems.push(format!(
                "key {:?} is reserved in ingest_keys but no event is stored under it",
                id.1
            ));
        }
    }
    for id in stored.keys() {
        if !explained.contains(id) {
            problems.push(format!(
                "events row for key {:?} that no accepted answer or publish explains",
                id.1
            ));
        }
    }
    for n in &nats {
        let Some(seq) = n.sequence else { continue };
        let hash = serde_json::from_slice::<Value>(&n.payload)
            .ok()
            .map(|v| body_hash(&v));
        let is_stored = hash.is_some() && stored.get(&(n.tenant, n.key.clone())) == hash.as_ref();
        if !is_stored && dead_letter_of(dead, Some(seq), &n.payload).is_none() {
            problems.push(format!(
                "NATS message at sequence {seq} (key {:?}) is neither stored nor dead-lettered",
                n.key
            ));
        }
    }
    problems
}

/// Waits until [`reconcile`] finds nothing, or `within` passes; returns
/// the last discrepancies (empty on success).
pub async fn reconcile_within(
    within: Duration,
    pool: &sqlx::PgPool,
    js: &async_nats::jetstream::Context,
    ns: &str,
    ledger: &Ledger,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let dead = dead_letters(pool, js, ns).await;
        let problems = reconcile(pool, &dead, ledger).await;
        if problems.is_empty() || Instant::now() >= deadline {
            return problems;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
