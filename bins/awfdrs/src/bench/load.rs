//! The load: events of one size, published over NATS (paced, or as fast as
//! the number of publishes in flight allows) or posted over HTTP by
//! concurrent keep-alive clients.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awfdrs_bus::{Bus, Outgoing};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

/// The workflows (and the vendor each calls); failures spread over these
/// times the error codes.
const WORKFLOWS: [(&str, &str); 10] = [
    ("checkout", "stripe"),
    ("payouts", "adyen"),
    ("onboarding", "twilio"),
    ("refunds", "stripe"),
    ("invoicing", "quickbooks"),
    ("kyc", "onfido"),
    ("shipping", "shippo"),
    ("billing", "chargebee"),
    ("signup", "sendgrid"),
    ("renewals", "paypal"),
];
/// One event in this many is a success of the same step.
const SUCCESS_ONE_IN: u64 = 10;

/// The number of workflows the load spreads over.
pub const WORKFLOW_COUNT: usize = WORKFLOWS.len();
/// The share of successes, in percent.
pub const SUCCESS_PERCENT: u64 = 100 / SUCCESS_ONE_IN;

/// Makes the `i`-th event of a mode: unique key, fixed size.
#[derive(Debug)]
pub struct EventGen {
    tag: String,
    bytes: usize,
    pad: String,
    codes: Vec<String>,
}

impl EventGen {
    /// Events whose keys start with `tag`, failing with one of `codes`,
    /// padded to `bytes` when they are shorter.
    pub fn new(tag: &str, bytes: usize, codes: &[String]) -> Self {
        Self {
            tag: tag.to_owned(),
            bytes,
            pad: "x".repeat(bytes),
            codes: if codes.is_empty() {
                vec!["vendor_5xx".to_owned()]
            } else {
                codes.to_vec()
            },
        }
    }

    /// The workflow of event `i` (it is in the subject).
    pub fn workflow(&self, i: u64) -> &'static str {
        WORKFLOWS[pick(i, 8, WORKFLOWS.len())].0
    }

    /// The idempotency key of event `i`.
    pub fn key(&self, i: u64) -> String {
        format!("{}-{i:010}", self.tag)
    }

    /// The JSON body of event `i`, which happened (and is sent) at `at`.
    pub fn body(&self, i: u64, at: DateTime<Utc>) -> String {
        let (workflow, vendor) = WORKFLOWS[pick(i, 8, WORKFLOWS.len())];
        let at = at.to_rfc3339_opts(SecondsFormat::Micros, true);
        let success = pick(i, 24, SUCCESS_ONE_IN as usize) == 0;
        let mut body = if success {
            format!(
                r#"{{"idempotency_key":"{}-{i:010}","workflow_id":"{workflow}","event_type":"step_succeeded","occurred_at":"{at}","workflow_run_id":"run-{i:010}","step":"charge","vendor":"{vendor}","attempt":1,"metadata":{{"note":""#,
                self.tag
            )
        } else {
            let code = &self.codes[pick(i, 16, self.codes.len())];
            format!(
                r#"{{"idempotency_key":"{}-{i:010}","workflow_id":"{workflow}","event_type":"step_failed","occurred_at":"{at}","workflow_run_id":"run-{i:010}","step":"charge","vendor":"{vendor}","attempt":1,"error":{{"code":"{code}","http_status":504,"retryable":true,"message":""#,
                self.tag
            )
        };
        const TAIL: &str = r#""}}"#;
        let pad = self.bytes.saturating_sub(body.len() + TAIL.len());
        body.push_str(&self.pad[..pad.min(self.pad.len())]);
        body.push_str(TAIL);
        body
    }
}

/// A well-spread choice among `n` for event `i`.
fn pick(i: u64, shift: u32, n: usize) -> usize {
    let h = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> shift) % n as u64) as usize
}

/// What a load run did.
#[derive(Debug)]
pub struct Sent {
    /// Events the pipeline took (publish acked, or HTTP 202).
    pub accepted: u64,
    /// Events refused or lost, by HTTP status (0: no answer, or no publish ack).
    pub refused: BTreeMap<u16, u64>,
    pub first_error: Option<String>,
    /// When the first event was (meant to be) sent.
    pub started: DateTime<Utc>,
    /// How long sending took, first send to last answer.
    pub elapsed: Duration,
    /// Latency of requests (HTTP) in microseconds.
    pub requests: Histogram<u64>,
    /// Sending stopped at the time budget, before all events were sent.
    pub cut_short: bool,
}

impl Sent {
    fn new(started: DateTime<Utc>) -> Self {
        Self {
            accepted: 0,
            refused: BTreeMap::new(),
            first_error: None,
            started,
            elapsed: Duration::ZERO,
            requests: histogram(),
            cut_short: false,
        }
    }

    fn refuse(&mut self, status: u16, n: u64, error: impl FnOnce() -> String) {
        *self.refused.entry(status).or_default() += n;
        if self.first_error.is_none() {
            self.first_error = Some(error());
        }
    }

    fn merge(&mut self, other: Sent) {
        self.accepted += other.accepted;
        for (status, n) in other.refused {
            *self.refused.entry(status).or_default() += n;
        }
        self.first_error = self.first_error.take().or(other.first_error);
        self.cut_short |= other.cut_short;
        // Both come from histogram() with the same bounds.
        let _ = self.requests.add(other.requests);
    }
}

/// A histogram of microseconds, from 1 µs to an hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Publishes `n` events over NATS, each awaiting its JetStream ack, with at
/// most `in_flight` unacknowledged at once. With `rate`, event `i` is due
/// at `start + i / rate` and carries that instant as its `occurred_at`, so
/// a publisher that falls behind shows in the latency instead of hiding
/// it; without, events go as fast as acks come back and carry the instant
/// they were sent. No event is sent after `budget`.
pub async fn publish(
    bus: Arc<Bus>,
    events: Arc<EventGen>,
    tenant: &str,
    (n, budget): (u64, Duration),
    rate: Option<u64>,
    in_flight: usize,
) -> Sent {
    #[derive(Default)]
    struct Tally {
        acked: AtomicU64,
        failed: AtomicU64,
        first_error: Mutex<Option<String>>,
    }
    let tally = Arc::new(Tally::default());
    let permits = Arc::new(Semaphore::new(in_flight));
    let started_wall = Utc::now();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut i = 0;
    let mut cut_short = false;
    while i < n {
        if started.elapsed() >= budget {
            cut_short = true;
            break;
        }
        let due = match rate {
            Some(rate) => {
                tick.tick().await;
                let elapsed = started.elapsed().as_nanos();
                u64::try_from(elapsed * u128::from(rate) / 1_000_000_000 + 1)
                    .unwrap_or(u64::MAX)
                    .min(n)
            }
            None => n,
        };
        while i < due {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let at = match rate {
                Some(rate) => {
                    let offset = u128::from(i) * 1_000_000_000 / u128::from(rate);
                    started_wall
                        + chrono::Duration::nanoseconds(i64::try_from(offset).unwrap_or(i64::MAX))
                }
                None => Utc::now(),
            };
            let msg = Outgoing {
                subject: bus.ns().events_subject(tenant, events.workflow(i)),
                msg_id: events.key(i),
                correlation_id: None,
                headers: Vec::new(),
                payload: Bytes::from(events.body(i, at)),
            };
            let (bus, tally) = (bus.clone(), tally.clone());
            tokio::spawn(async move {
                // The permit goes back once the answer is counted.
                let _permit = permit;
                match bus.publish(msg).await {
                    Ok(_) => tally.acked.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        let mut first = tally.first_error.lock().unwrap_or_else(|p| p.into_inner());
                        first.get_or_insert_with(|| e.to_string());
                        tally.failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            });
            i += 1;
        }
    }
    // Every permit back means every publish has its answer.
    let _ = permits
        .acquire_many(u32::try_from(in_flight).unwrap_or(u32::MAX))
        .await;
    let mut sent = Sent::new(started_wall);
    sent.elapsed = started.elapsed();
    sent.cut_short = cut_short;
    sent.accepted = tally.acked.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = tally
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        sent.refuse(0, failed, || first.unwrap_or_default());
    }
    sent
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_requested_size_and_are_valid() {
        let codes: Vec<String> = ["a_1", "b_2", "c_3", "d_4", "e_5"].map(String::from).into();
        let events = EventGen::new("bench-t", 512, &codes);
        let now = Utc::now();
        let mut failures = 0;
        let mut signatures = std::collections::HashSet::new();
        for i in 0..2000 {
            let body = events.body(i, now);
            assert_eq!(body.len(), 512, "{body}");
            let value: serde_json::Value = serde_json::from_str(&body).expect("json");
            let valid = awfdrs_domain::parse_event(&value, now).expect("valid event");
            assert_eq!(valid.event.workflow_id, events.workflow(i));
            if let Some(e) = valid.event.error {
                failures += 1;
                signatures.insert((valid.event.workflow_id, e.code));
            }
        }
        assert_eq!(signatures.len(), WORKFLOW_COUNT * codes.len());
        assert!((1700..1900).contains(&failures), "{failures} failures");
    }
}
