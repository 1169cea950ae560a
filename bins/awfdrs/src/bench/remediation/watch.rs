//! The two ends of a remediation mode: decisions published on
//! `<ns>.decisions.<tenant>` as the analyzer's relay publishes them (one
//! JetStream publish each, message id `decision:<id>`), paced or not (the
//! notifier mode publishes its escalations the same way); and
//! a plain NATS subscription to the tenant's retry commands, which notes
//! when each incident's first command arrived.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use awfdrs_bus::{Bus, Outgoing};
use awfdrs_domain::RetryCommandV1;
use awfdrs_domain::decision::DecisionV1;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A retry command as it arrived.
#[derive(Debug, Clone, Copy)]
pub(in crate::bench) struct Arrival {
    pub received: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
}

/// What the subscription saw, once stopped.
#[derive(Debug, Default)]
pub(in crate::bench) struct Arrivals {
    /// The first command of each incident.
    pub first: HashMap<Uuid, Arrival>,
    /// Commands for an incident that already had one.
    pub repeated: u64,
    /// Messages that were not a retry command.
    pub unreadable: u64,
}

/// A running subscription to one tenant's retry commands.
pub(in crate::bench) struct Watcher {
    seen: Arc<AtomicU64>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Arrivals>,
}

impl Watcher {
    /// Subscribes to `<ns>.commands.<tenant>.*.retry` (before anything can
    /// be fired, so none is missed).
    ///
    /// # Errors
    /// When the subscription cannot be made.
    pub(in crate::bench) async fn start(bus: &Bus, tenant: &str) -> anyhow::Result<Self> {
        let subject = bus.ns().retry_command(tenant, "*");
        let mut messages = bus.subscribe(subject).await?;
        let seen = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (counter, cancelled) = (seen.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut got = Arrivals::default();
            loop {
                let msg = tokio::select! {
                    () = cancelled.cancelled() => break,
                    msg = messages.next() => match msg {
                        Some(msg) => msg,
                        None => break,
                    },
                };
                let received = Utc::now();
                let Ok(command) = serde_json::from_slice::<RetryCommandV1>(&msg.payload) else {
                    got.unreadable += 1;
                    continue;
                };
                let arrival = Arrival {
                    received,
                    due_at: command.due_at,
                };
                if got.first.insert(command.incident_id, arrival).is_some() {
                    got.repeated += 1;
                } else {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            got
        });
        Ok(Self { seen, stop, task })
    }

    /// Incidents with a command so far.
    pub(in crate::bench) fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Stops listening and returns what arrived.
    pub(in crate::bench) async fn stop(self) -> Arrivals {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// Waits until `done()` reaches `expected`, for as long as it moves: gives
/// up when it has not for `stalled` (counted from `not_before`, the last
/// moment anything was due). `what` names the count in the error.
///
/// # Errors
/// When it stalls, or `done` fails.
pub(in crate::bench) async fn wait_for<F, Fut>(
    expected: u64,
    not_before: tokio::time::Instant,
    stalled: Duration,
    what: &str,
    mut done: F,
) -> anyhow::Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let mut progress = (0, tokio::time::Instant::now());
    loop {
        let n = done().await?;
        if n >= expected {
            return Ok(n);
        }
        let now = tokio::time::Instant::now();
        if n > progress.0 {
            progress = (n, now);
        } else if now > not_before && now.duration_since(progress.1.max(not_before)) > stalled {
            bail!("no progress for {stalled:?}: {n} of {expected} {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes `decisions` on the decisions subject as the analyzer's relay
/// does ([`publish_messages`]).
///
/// # Errors
/// When a publish fails: its retry could never come.
pub(super) async fn publish(
    bus: &Arc<Bus>,
    decisions: &[DecisionV1],
    rate: Option<u64>,
    in_flight: usize,
) -> anyhow::Result<(Vec<DateTime<Utc>>, Duration)> {
    let mut messages = Vec::with_capacity(decisions.len());
    for d in decisions {
        messages.push(Outgoing {
            subject: bus.ns().decisions(&d.tenant),
            msg_id: d.msg_id(),
            correlation_id: Some(d.correlation_id.clone()),
            headers: Vec::new(),
            payload: Bytes::from(serde_json::to_vec(d)?),
        });
    }
    publish_messages(bus, messages, rate, in_flight).await
}

/// Publishes `messages` (JetStream), at most `in_flight` awaiting their
/// ack at once; with `rate`, message `i` goes at `start + i / rate`.
/// Returns when each was handed to the bus (in order) and how long
/// publishing took.
///
/// # Errors
/// When a publish fails.
pub(in crate::bench) async fn publish_messages(
    bus: &Arc<Bus>,
    messages: Vec<Outgoing>,
    rate: Option<u64>,
    in_flight: usize,
) -> anyhow::Result<(Vec<DateTime<Utc>>, Duration)> {
    let failed = Arc::new(std::sync::Mutex::new(None::<String>));
    let permits = Arc::new(Semaphore::new(in_flight.max(1)));
    let started = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(messages.len());
    for (i, msg) in messages.into_iter().enumerate() {
        if let Some(rate) = rate.filter(|r| *r > 0) {
            let offset = (i as u128) * 1_000_000_000 / u128::from(rate);
            let offset = u64::try_from(offset).unwrap_or(u64::MAX);
            tokio::time::sleep_until(started + Duration::from_nanos(offset)).await;
        }
        let permit = permits.clone().acquire_owned().await?;
        sent.push(Utc::now());
        let (bus, failed) = (bus.clone(), failed.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = bus.publish(msg).await {
                let mut first = failed.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        });
    }
    let all = u32::try_from(in_flight.max(1)).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await?;
    let publishing = started.elapsed();
    if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
        bail!("publishing: {e}");
    }
    Ok((sent, publishing))
}
