//! Inputs at the system's limits: a dead letter as big as the broker
//! takes, and requests the client gives up on midway.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::case::ev;
use crate::harness::{H, record};

/// An invalid message as big as the broker takes: its dead letter is kept
/// although a copy of it cannot be published whole.
pub(crate) async fn oversized_invalid(h: &H) -> Result<(), String> {
    // Just under the broker's limit: a copy with dead-letter headers added
    // cannot be published whole.
    let mut v = ev("nats_oversized_invalid_message");
    v["blob"] = json!("");
    let base = serde_json::to_vec(&v).unwrap().len();
    v["blob"] = json!("x".repeat(h.max_payload.saturating_sub(base + 16)));
    let payload = Bytes::from(serde_json::to_vec(&v).unwrap());
    let seq = h
        .publish(("acme", h.acme.0), "checkout", None, payload.clone())
        .await?;
    match h
        .settle(seq, h.acme.0, &payload, Duration::from_secs(45))
        .await?
    {
        Some(_) => Ok(()),
        None => Err("an invalid event was stored".into()),
    }
}

/// Cancelled requests (the client gives up at once, at various points)
/// leave no transaction open and no key half-reserved; the same requests
/// sent again are accepted or found as duplicates.
pub(crate) async fn cancelled_requests(h: &H) -> Result<(), String> {
    let n = 120;
    let bodies: Vec<Value> = (0..n).map(|i| ev(&format!("cancelled-{i}"))).collect();
    // In waves of ten, each request given up after 0.5 to 50 ms: some
    // before the key is reserved, some while it is, some after.
    let mut first = Vec::new();
    for (w, chunk) in bodies.chunks(10).enumerate() {
        let sends = chunk.iter().enumerate().map(|(i, body)| async move {
            let micros = 500 + 5_000 * (i as u64) + 400 * (w as u64);
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_micros(micros))
                .build()
                .unwrap();
            let r = client
                .post(format!("{}/api/v1/events", h.base))
                .bearer_auth(&h.acme.1)
                .json(body)
                .send()
                .await;
            let status = r.map(|r| r.status().as_u16()).unwrap_or(0);
            record(h, &[h.acme.0], body, status);
            status
        });
        first.extend(futures::future::join_all(sends).await);
    }
    eprintln!(
        "cancelled requests: {} of {n} answered before the client gave up",
        first.iter().filter(|s| **s != 0).count()
    );
    let database = h.world.database.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = $1 AND state LIKE 'idle in transaction%'",
        )
        .bind(&database)
        .fetch_one(&h.pool)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{open} sessions still idle in a transaction after the cancelled requests"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut wrong = Vec::new();
    let mut found = 0;
    for body in &bodies {
        let (status, answer) = h.post_event(body).await;
        found += usize::from(status == 200);
        if status != 202 && status != 200 {
            wrong.push(format!("{}: {status} {answer}", body["idempotency_key"]));
        }
    }
    eprintln!("cancelled requests: {found} of {n} already accepted when sent again");
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "sent again after cancellation: {}",
            wrong.join("; ")
        ))
    }
}
