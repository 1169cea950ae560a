//! The load over HTTP: events posted to the gateway by concurrent
//! keep-alive clients, one per request or in batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{EventGen, Sent};

/// How events are posted.
#[derive(Debug, Clone, Copy)]
pub enum Post {
    /// One event per `POST /api/v1/events`.
    Single,
    /// This many per `POST /api/v1/events/batch`.
    Batch(usize),
}

/// Posts `n` events to the gateway at `base` with `clients` concurrent
/// keep-alive connections, each sending its next request when the last is
/// answered. Each event carries the instant its request was sent. No
/// request is sent after `budget`.
pub async fn post(
    base: &str,
    api_key: &str,
    events: Arc<EventGen>,
    (n, budget): (u64, Duration),
    clients: usize,
    how: Post,
) -> anyhow::Result<Sent> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let (url, per_request) = match how {
        Post::Single => (format!("{base}/api/v1/events"), 1),
        Post::Batch(size) => (format!("{base}/api/v1/events/batch"), size.max(1) as u64),
    };
    let next = Arc::new(AtomicU64::new(0));
    let started_wall = Utc::now();
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, url, key, events, next) = (
            http.clone(),
            url.clone(),
            api_key.to_owned(),
            events.clone(),
            next.clone(),
        );
        workers.spawn(async move {
            let mut sent = Sent::new(started_wall);
            loop {
                if started.elapsed() >= budget {
                    sent.cut_short = true;
                    break;
                }
                let first = next.fetch_add(per_request, Ordering::Relaxed);
                if first >= n {
                    break;
                }
                let last = (first + per_request).min(n);
                let at = Utc::now();
                let body = match how {
                    Post::Single => events.body(first, at),
                    Post::Batch(_) => {
                        let items: Vec<String> =
                            (first..last).map(|i| events.body(i, at)).collect();
                        format!("[{}]", items.join(","))
                    }
                };
                let count = last - first;
                let t = Instant::now();
                let answer = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                let answer = match answer {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        resp.bytes().await.map(|b| (status, b))
                    }
                    Err(e) => Err(e),
                };
                let _ = sent
                    .requests
                    .record(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                match (how, answer) {
                    (_, Err(e)) => sent.refuse(0, count, || format!("{e:#}")),
                    (Post::Single, Ok((202, _))) => sent.accepted += 1,
                    (Post::Batch(_), Ok((200, body))) => tally_batch(&mut sent, &body, count),
                    (_, Ok((status, body))) => sent.refuse(status, count, || {
                        format!("HTTP {status}: {}", String::from_utf8_lossy(&body))
                    }),
                }
            }
            sent
        });
    }
    let mut total = Sent::new(started_wall);
    while let Some(done) = workers.join_next().await {
        total.merge(done?);
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// Counts the items of a batch answer: 202 accepted, anything else refused.
fn tally_batch(sent: &mut Sent, body: &[u8], count: u64) {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let Some(results) = parsed["results"].as_array() else {
        sent.refuse(200, count, || {
            format!(
                "batch answer without results: {}",
                String::from_utf8_lossy(body)
            )
        });
        return;
    };
    for item in results {
        let status = item["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0);
        if status == 202 {
            sent.accepted += 1;
        } else {
            sent.refuse(status, 1, || format!("batch item: {item}"));
        }
    }
}
