//! The load over NATS: events published to the events stream, paced or as
//! fast as the publishes in flight allow, each awaiting its JetStream ack.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awfdrs_bus::{Bus, Outgoing};
use bytes::Bytes;
use chrono::Utc;
use tokio::sync::Semaphore;

use super::{Events, Sent};

/// Publishes `n` events over NATS, each awaiting its JetStream ack, with at
/// most `in_flight` unacknowledged at once. With `rate`, event `i` is due
/// at `start + i / rate` and carries that instant as its `occurred_at`, so
/// a publisher that falls behind shows in the latency instead of hiding
/// it; without, events go as fast as acks come back and carry the instant
/// they were sent. No event is sent after `budget`.
pub async fn publish(
    bus: Arc<Bus>,
    events: Arc<dyn Events>,
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
                subject: bus.ns().events_subject(tenant, &events.workflow(i)),
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
