//! The one consumer loop: fetch in batches, hand a batch to the handler,
//! then ack (after the handler's commit), nak with a growing delay
//! (transient failure), or dead-letter and terminate (permanent failure, or
//! transient failures past `max_deliver`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind};
use awfdrs_telemetry::{ConsumerLabels, ConsumerOutcomeLabels, Metrics};
use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::headers;
use crate::names::Stage;
use crate::topology::ConsumerSettings;
use crate::{Bus, BusError};

/// A delivered message.
#[derive(Debug)]
pub struct Delivery {
    pub subject: String,
    pub payload: Bytes,
    headers: Option<HeaderMap>,
    pub stream_sequence: u64,
    /// 1 on first delivery.
    pub delivered: i64,
    /// When the message was stored in the stream.
    pub published: chrono::DateTime<chrono::Utc>,
    msg: jetstream::Message,
}

impl Delivery {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str())
    }

    /// The correlation id header.
    pub fn correlation_id(&self) -> Option<&str> {
        self.header(headers::CORRELATION_ID)
    }
}

/// What to do with one message after the handler ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled and committed: ack.
    Ack,
    /// Failed for a reason that may pass: redeliver later.
    Retry(String),
    /// Can never be processed: dead-letter with the reason, terminate.
    Reject(String),
}

/// Handles batches of messages. The outcomes are one per delivery, in order.
pub trait Handler: Send + Sync + 'static {
    /// Handles a batch; must commit its effects before returning `Ack`s.
    fn handle(&self, batch: &[Delivery]) -> impl Future<Output = Vec<Outcome>> + Send;
}

/// Pause after a pull error before pulling again.
const PULL_ERROR_PAUSE: Duration = Duration::from_millis(250);

/// How a stage consumes.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub stage: Stage,
    pub settings: ConsumerSettings,
    pub batch_size: usize,
    pub linger: Duration,
    pub nak_base: Duration,
    pub nak_max: Duration,
}

/// The delay before redelivery after the `delivered`-th failed delivery:
/// `base · 2^(delivered-1)`, capped at `max`.
pub fn nak_delay(base: Duration, max: Duration, delivered: i64) -> Duration {
    let exp = u32::try_from(delivered.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    base.saturating_mul(2u32.saturating_pow(exp)).min(max)
}

/// Runs the consumer of `spec.stage` until `shutdown` is cancelled, then
/// finishes the batch in hand and returns. Messages buffered but not yet
/// handled are left unacked and are redelivered after `ack_wait`.
///
/// # Errors
/// When the consumer cannot be reached at start.
pub async fn run<H: Handler>(
    bus: Bus,
    spec: ConsumerSpec,
    handler: Arc<H>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let ns = bus.ns().clone();
    let name = ns.consumer(spec.stage);
    let consumer: jetstream::consumer::PullConsumer = bus
        .js()
        .get_consumer_from_stream(&name, &stream_of(&bus, spec.stage))
        .await
        .map_err(|e| BusError::Topology(format!("consumer {name}: {e}")))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(spec.batch_size)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| BusError::Unavailable(format!("consumer {name}: {e}")))?;
    let labels = ConsumerLabels {
        consumer: name.clone(),
    };
    info!(consumer = %name, batch = spec.batch_size, "consumer started");

    let mut batch: Vec<Delivery> = Vec::with_capacity(spec.batch_size);
    loop {
        // Wait for the first message of a batch, or for shutdown.
        let first = tokio::select! {
            () = shutdown.cancelled() => break,
            next = messages.next() => next,
        };
        match first {
            None => {
                warn!(consumer = %name, "message stream ended");
                break;
            }
            Some(Err(e)) => {
                // A lost heartbeat or a reconnect: the stream recovers by
                // itself; pause so a persistent failure cannot spin.
                warn!(consumer = %name, error = %e, "pull error");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(PULL_ERROR_PAUSE) => {}
                }
                continue;
            }
            Some(Ok(m)) => batch.extend(delivery(m)),
        }
        // Linger briefly for the batch to fill.
        let deadline = tokio::time::Instant::now() + spec.linger;
        while batch.len() < spec.batch_size {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Ok(Some(Ok(m))) => batch.extend(delivery(m)),
                Ok(Some(Err(e))) => debug!(consumer = %name, error = %e, "pull error"),
                Ok(None) | Err(_) => break,
            }
        }
        let span = info_span!("batch", consumer = %name, size = batch.len());
        settle(&bus, &spec, &*handler, &metrics, &labels, &mut batch)
            .instrument(span)
            .await;
    }
    info!(consumer = %name, "consumer stopped");
    Ok(())
}

fn stream_of(bus: &Bus, stage: Stage) -> String {
    match stage {
        Stage::Detector => bus.ns().events_stream(),
    }
}

fn delivery(msg: jetstream::Message) -> Option<Delivery> {
    let (stream_sequence, delivered, published) = match msg.info() {
        Ok(info) => (
            info.stream_sequence,
            info.delivered,
            chrono::DateTime::from_timestamp_nanos(
                i64::try_from(info.published.unix_timestamp_nanos()).unwrap_or(0),
            ),
        ),
        Err(e) => {
            warn!(error = %e, "message without JetStream metadata; skipped");
            return None;
        }
    };
    Some(Delivery {
        subject: msg.subject.to_string(),
        payload: msg.payload.clone(),
        headers: msg.headers.clone(),
        stream_sequence,
        delivered,
        published,
        msg,
    })
}

async fn settle<H: Handler>(
    bus: &Bus,
    spec: &ConsumerSpec,
    handler: &H,
    metrics: &Metrics,
    labels: &ConsumerLabels,
    batch: &mut Vec<Delivery>,
) {
    let started = Instant::now();
    let redelivered = batch.iter().filter(|d| d.delivered > 1).count() as u64;
    if redelivered > 0 {
        metrics
            .messages_redelivered
            .get_or_create(labels)
            .inc_by(redelivered);
    }
    let mut outcomes = handler.handle(batch).await;
    // A handler that returns fewer outcomes than messages has a bug; retry
    // the rest rather than lose them.
    outcomes.resize(
        batch.len(),
        Outcome::Retry("no outcome from handler".into()),
    );
    metrics
        .batch_seconds
        .get_or_create(labels)
        .observe(started.elapsed().as_secs_f64());
    metrics
        .batch_size
        .get_or_create(labels)
        .observe(batch.len() as f64);

    let acks = batch
        .drain(..)
        .zip(outcomes)
        .map(|(d, outcome)| async move {
            let outcome = match outcome {
                Outcome::Retry(reason) if d.delivered >= spec.settings.max_deliver => {
                    Outcome::Reject(format!(
                        "gave up after {} deliveries: {reason}",
                        d.delivered
                    ))
                }
                other => other,
            };
            let label = match &outcome {
                Outcome::Ack => "ack",
                Outcome::Retry(_) => "retry",
                Outcome::Reject(_) => "dead_letter",
            };
            let result = match outcome {
                Outcome::Ack => d.msg.ack().await.map_err(|e| e.to_string()),
                Outcome::Retry(reason) => {
                    let delay = nak_delay(spec.nak_base, spec.nak_max, d.delivered);
                    warn!(
                        subject = %d.subject, seq = d.stream_sequence, delivered = d.delivered,
                        correlation_id = d.correlation_id().unwrap_or(""), %reason, ?delay,
                        "message will be redelivered"
                    );
                    d.msg
                        .ack_with(AckKind::Nak(Some(delay)))
                        .await
                        .map_err(|e| e.to_string())
                }
                Outcome::Reject(reason) => dead_letter(bus, spec, &d, &reason).await,
            };
            (label, result)
        });
    for (label, result) in futures::future::join_all(acks).await {
        metrics
            .messages
            .get_or_create(&ConsumerOutcomeLabels {
                consumer: labels.consumer.clone(),
                outcome: label,
            })
            .inc();
        if label == "dead_letter" && result.is_ok() {
            metrics.messages_dead_lettered.get_or_create(labels).inc();
        }
        if let Err(e) = result {
            // The message will be redelivered after ack_wait; handlers are
            // idempotent, so this costs time, not correctness.
            warn!(error = %e, "could not settle message");
        }
    }
}

/// Publishes the message with its reason to `<ns>.dlq.<stage>`, then
/// terminates it. If the dead-letter publish fails the message is nak'd, so
/// it is never lost.
async fn dead_letter(
    bus: &Bus,
    spec: &ConsumerSpec,
    d: &Delivery,
    reason: &str,
) -> Result<(), String> {
    let ns = bus.ns();
    let mut h = HeaderMap::new();
    h.insert(
        headers::MSG_ID,
        format!("dlq:{}:{}", spec.stage, d.stream_sequence).as_str(),
    );
    h.insert(headers::DLQ_REASON, reason);
    h.insert(headers::DLQ_SUBJECT, d.subject.as_str());
    h.insert(
        headers::DLQ_SEQUENCE,
        d.stream_sequence.to_string().as_str(),
    );
    h.insert(headers::DLQ_DELIVERED, d.delivered.to_string().as_str());
    h.insert(headers::DLQ_CONSUMER, ns.consumer(spec.stage).as_str());
    if let Some(c) = d.correlation_id() {
        h.insert(headers::CORRELATION_ID, c);
    }
    let published = match bus
        .js()
        .publish_with_headers(ns.dlq(spec.stage), h, d.payload.clone())
        .await
    {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match published {
        Ok(()) => {
            warn!(
                subject = %d.subject, seq = d.stream_sequence, delivered = d.delivered,
                correlation_id = d.correlation_id().unwrap_or(""), %reason,
                "message dead-lettered"
            );
            d.msg
                .ack_with(AckKind::Term)
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => {
            let delay = nak_delay(spec.nak_base, spec.nak_max, d.delivered);
            let _ = d.msg.ack_with(AckKind::Nak(Some(delay))).await;
            Err(format!("dead-letter publish failed: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nak_delay_doubles_per_delivery_up_to_the_cap() {
        let (b, m) = (Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(nak_delay(b, m, 1), Duration::from_millis(100));
        assert_eq!(nak_delay(b, m, 2), Duration::from_millis(200));
        assert_eq!(nak_delay(b, m, 4), Duration::from_millis(800));
        assert_eq!(nak_delay(b, m, 5), m);
        assert_eq!(nak_delay(b, m, 1000), m);
    }
}
