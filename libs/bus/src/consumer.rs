//! The one consumer loop: fetch in batches, hand a batch to the handler,
//! then settle each message by its [`Outcome`]:
//!
//! * `Ack`: ack (the handler committed);
//! * `Retry`: nak with a delay growing with the delivery count, and past
//!   `max_deliver` dead-letter instead;
//! * `Reject`: dead-letter: the record is made durable through the
//!   [`DeadLetterSink`] first, then a notification is published to
//!   `<ns>.dlq.<stage>` (with the payload when it fits the server's
//!   `max_payload`, else naming the record), then the message is
//!   terminated. A message whose record cannot be made is never terminated;
//! * `Unavailable`: a dependency is down. The loop holds the message (no
//!   nak, so no delivery is spent; `Progress` acks keep the server from
//!   redelivering it), stops fetching and drops its pull stream, probes
//!   [`Handler::ready`] with backoff, and handles the held messages again
//!   once it answers. An outage of any length dead-letters nothing.
//!
//! While a batch is being handled its messages are marked in progress, so a
//! slow handler does not let `ack_wait` run out. A panic while handling a
//! batch is contained: the batch's messages are
//! handled again one at a time, and only a message whose handling panics is
//! dead-lettered (`handler panicked: ...`). The loop lives on.

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::{self, AckKind};
use awfdrs_telemetry::{ConsumerLabels, ConsumerOutcomeLabels, Metrics};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::headers;
use crate::names::{Source, Stage};
use crate::topology::{ConsumerSettings, source};
use crate::{Bus, BusError, decoded_headers, header_map, lookup};

/// A delivered message.
#[derive(Debug)]
pub struct Delivery {
    pub subject: String,
    pub payload: Bytes,
    /// Header values, decoded (see [`headers`]).
    headers: Vec<(String, String)>,
    pub stream_sequence: u64,
    /// 1 on first delivery.
    pub delivered: i64,
    /// When the message was stored in the stream.
    pub published: chrono::DateTime<chrono::Utc>,
    msg: jetstream::Message,
}

impl Delivery {
    /// A header's value, decoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        lookup(&self.headers, name)
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
    /// A dependency (the database) is down: hold the message, stop
    /// fetching, and handle it again once [`Handler::ready`] says so. No
    /// delivery is spent.
    Unavailable(String),
}

/// Handles batches of messages. The outcomes are one per delivery, in order.
pub trait Handler: Send + Sync + 'static {
    /// Handles a batch; must commit its effects before returning `Ack`s.
    fn handle(&self, batch: &[Delivery]) -> impl Future<Output = Vec<Outcome>> + Send;

    /// Whether the handler's dependencies answer again, probed while
    /// messages are held after an [`Outcome::Unavailable`].
    fn ready(&self) -> impl Future<Output = bool> + Send {
        async { true }
    }
}

/// A message the loop gave up on, as it is recorded before the original
/// is terminated.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub stage: Stage,
    pub subject: String,
    pub stream_sequence: u64,
    pub delivered: i64,
    pub consumer: String,
    /// What was wrong, in full.
    pub reason: String,
    /// The message's headers, names and values as [`headers::encode`]
    /// writes them (printable ASCII).
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
}

/// Where dead letters are recorded durably.
pub trait DeadLetterSink: Send + Sync + 'static {
    /// Records `letter` (idempotently: the same consumer and stream
    /// sequence give the same record) and returns the record's id.
    fn record(&self, letter: &DeadLetter) -> impl Future<Output = Result<i64, String>> + Send;
}

/// Pause after a pull error before pulling again.
const PULL_ERROR_PAUSE: Duration = Duration::from_millis(250);
/// First and longest pause between readiness probes while holding.
const PROBE_MIN: Duration = Duration::from_millis(250);
const PROBE_MAX: Duration = Duration::from_secs(5);
/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest reason or quoted value carried in a notification header;
/// the record keeps the whole text.
const MAX_HEADER_VALUE: usize = 1024;
/// Room left under `max_payload` for the protocol line.
const PAYLOAD_MARGIN: usize = 512;

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

/// What the loop does with a message, decided from its outcome alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Nak, redelivered after the delay.
    Nak(Duration, String),
    /// Record, notify, terminate.
    DeadLetter(String),
    /// Keep, stop fetching, wait for the dependency.
    Hold(String),
}

/// The disposition of a message delivered `delivered` times whose handling
/// gave `outcome`.
pub fn disposition(outcome: Outcome, delivered: i64, spec: &ConsumerSpec) -> Disposition {
    match outcome {
        Outcome::Ack => Disposition::Ack,
        Outcome::Retry(reason) if delivered >= spec.settings.max_deliver => {
            Disposition::DeadLetter(format!("gave up after {delivered} deliveries: {reason}"))
        }
        Outcome::Retry(reason) => {
            Disposition::Nak(nak_delay(spec.nak_base, spec.nak_max, delivered), reason)
        }
        Outcome::Reject(reason) => Disposition::DeadLetter(reason),
        Outcome::Unavailable(reason) => Disposition::Hold(reason),
    }
}

/// The pause before the `attempt`-th readiness probe (0-based) while
/// holding: doubles from 250 ms up to 5 s.
pub fn probe_delay(attempt: u32) -> Duration {
    PROBE_MIN
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(PROBE_MAX)
}

/// How often held messages are marked in progress: well before `ack_wait`
/// runs out.
pub fn progress_every(ack_wait: Duration) -> Duration {
    (ack_wait / 3).clamp(Duration::from_millis(100), Duration::from_secs(10))
}

/// Whether a payload of `payload` bytes travels with headers of `headers`
/// bytes under the server's `max_payload`.
pub fn payload_fits(payload: usize, headers: usize, max_payload: usize) -> bool {
    payload
        .saturating_add(headers)
        .saturating_add(PAYLOAD_MARGIN)
        <= max_payload
}

/// Runs the consumer of `spec.stage` until `shutdown` is cancelled, then
/// finishes the batch in hand and returns. Messages buffered or held but not
/// yet settled are left unacked and are redelivered after `ack_wait`.
/// Dead letters are recorded in `sink` before their originals are
/// terminated.
///
/// # Errors
/// When the consumer cannot be reached at start.
pub async fn run<H: Handler, S: DeadLetterSink>(
    bus: Bus,
    spec: ConsumerSpec,
    handler: Arc<H>,
    sink: Arc<S>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let Source {
        stream,
        consumer: name,
        ..
    } = source(bus.ns(), spec.stage)?;
    let consumer: jetstream::consumer::PullConsumer = bus
        .js()
        .get_consumer_from_stream(&name, &stream)
        .await
        .map_err(|e| BusError::Topology(format!("consumer {name}: {e}")))?;
    let mut messages = Some(pull(&consumer, &spec, &name).await?);
    let labels = ConsumerLabels {
        consumer: name.clone(),
    };
    info!(consumer = %name, batch = spec.batch_size, "consumer started");
    let lp = Loop {
        bus,
        spec,
        handler,
        sink,
        metrics,
        labels,
        name,
    };

    let mut held: Vec<Delivery> = Vec::new();
    // Readiness probes made through consecutive holds that did not clear.
    let mut probes = 0u32;
    loop {
        if !held.is_empty() {
            // Stop fetching: keep what was already delivered to us, and drop
            // the pull stream so the server delivers nothing more.
            if let Some(mut stream) = messages.take() {
                let cap = lp.spec.batch_size.saturating_mul(2);
                for _ in 0..cap {
                    match stream.next().now_or_never() {
                        Some(Some(Ok(m))) => held.extend(delivery(m)),
                        Some(Some(Err(_))) => {}
                        Some(None) | None => break,
                    }
                }
            }
            warn!(consumer = %lp.name, held = held.len(), "a dependency is down; holding messages and not fetching");
            if !lp.wait_for_recovery(&held, &mut probes, &shutdown).await {
                break;
            }
            info!(consumer = %lp.name, held = held.len(), "dependency answers again; handling the held messages");
            let mut queue: VecDeque<Delivery> = std::mem::take(&mut held).into();
            while !queue.is_empty() {
                let n = queue.len().min(lp.spec.batch_size.max(1));
                let chunk: Vec<Delivery> = queue.drain(..n).collect();
                held = lp.settle(chunk).await;
                if !held.is_empty() {
                    held.extend(queue.drain(..));
                    break;
                }
            }
            if held.is_empty() {
                probes = 0;
            }
            continue;
        }
        let stream = match messages.as_mut() {
            Some(s) => s,
            None => match pull(&consumer, &lp.spec, &lp.name).await {
                Ok(s) => messages.insert(s),
                Err(e) => {
                    warn!(consumer = %lp.name, error = %e, "cannot pull");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(PULL_ERROR_PAUSE) => {}
                    }
                    continue;
                }
            },
        };
        let mut batch: Vec<Delivery> = Vec::with_capacity(lp.spec.batch_size);
        // Wait for the first message of a batch, or for shutdown.
        let first = tokio::select! {
            () = shutdown.cancelled() => break,
            next = stream.next() => next,
        };
        match first {
            None => {
                // The pull stream gave up (the server ended it): rebuild it,
                // unless the consumer itself is gone, which only an operator
                // or a broken deployment does: then stop loudly.
                warn!(consumer = %lp.name, "message stream ended; rebuilding it");
                messages = None;
                if !lp.consumer_exists().await {
                    return Err(BusError::Topology(format!(
                        "consumer {} no longer exists",
                        lp.name
                    )));
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(PULL_ERROR_PAUSE) => {}
                }
                continue;
            }
            Some(Err(e)) if e.kind() == MessagesErrorKind::ConsumerDeleted => {
                return Err(BusError::Topology(format!(
                    "consumer {} was deleted",
                    lp.name
                )));
            }
            Some(Err(e)) => {
                // A lost heartbeat or a reconnect: the stream recovers by
                // itself; pause so a persistent failure cannot spin.
                warn!(consumer = %lp.name, error = %e, "pull error");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(PULL_ERROR_PAUSE) => {}
                }
                continue;
            }
            Some(Ok(m)) => batch.extend(delivery(m)),
        }
        // Linger briefly for the batch to fill.
        let deadline = tokio::time::Instant::now() + lp.spec.linger;
        while batch.len() < lp.spec.batch_size {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(m))) => batch.extend(delivery(m)),
                Ok(Some(Err(e))) => debug!(consumer = %lp.name, error = %e, "pull error"),
                Ok(None) | Err(_) => break,
            }
        }
        let span = info_span!("batch", consumer = %lp.name, size = batch.len());
        held = lp.settle(batch).instrument(span).await;
    }
    info!(consumer = %lp.name, "consumer stopped");
    Ok(())
}

impl<H: Handler, S: DeadLetterSink> Loop<H, S> {
    /// Whether the stage's durable consumer still exists (a server that
    /// cannot be asked counts as yes: the pull will tell).
    async fn consumer_exists(&self) -> bool {
        let Ok(Source { stream, .. }) = source(self.bus.ns(), self.spec.stage) else {
            return false;
        };
        match self
            .bus
            .js()
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                &self.name, &stream,
            )
            .await
        {
            Ok(_) => true,
            Err(e) => match e.kind() {
                jetstream::stream::ConsumerErrorKind::JetStream(js) => !matches!(
                    js.error_code(),
                    jetstream::ErrorCode::CONSUMER_NOT_FOUND
                        | jetstream::ErrorCode::STREAM_NOT_FOUND
                ),
                _ => true,
            },
        }
    }
}

async fn pull(
    consumer: &jetstream::consumer::PullConsumer,
    spec: &ConsumerSpec,
    name: &str,
) -> Result<jetstream::consumer::pull::Stream, BusError> {
    consumer
        .stream()
        .max_messages_per_batch(spec.batch_size)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| BusError::Unavailable(format!("consumer {name}: {e}")))
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
        headers: decoded_headers(msg.headers.as_ref()),
        stream_sequence,
        delivered,
        published,
        msg,
    })
}

/// The text of a panic's payload.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// How one message was settled.
enum Settled {
    /// Acked, nak'd or dead-lettered, under this metric label.
    Done(&'static str, Result<(), String>),
    /// Kept for after the outage.
    Held(Box<Delivery>),
}

/// Why a dead letter did not complete.
enum DeadLetterError {
    /// The record could not be made: the message is held, not terminated.
    NotRecorded(String),
    /// Recorded, but the terminate did not reach the server (it will be
    /// redelivered and recorded again, idempotently).
    Term(String),
}

struct Loop<H, S> {
    bus: Bus,
    spec: ConsumerSpec,
    handler: Arc<H>,
    sink: Arc<S>,
    metrics: Arc<Metrics>,
    labels: ConsumerLabels,
    name: String,
}

impl<H: Handler, S: DeadLetterSink> Loop<H, S> {
    /// Handles and settles a batch; returns the messages to hold.
    async fn settle(&self, batch: Vec<Delivery>) -> Vec<Delivery> {
        let started = Instant::now();
        let redelivered = batch.iter().filter(|d| d.delivered > 1).count() as u64;
        if redelivered > 0 {
            self.metrics
                .messages_redelivered
                .get_or_create(&self.labels)
                .inc_by(redelivered);
        }
        // A slow handler (a slow database) must not let ack_wait run out:
        // the batch is marked in progress while it is handled.
        let outcomes = {
            let handling = self.handle_contained(&batch);
            tokio::pin!(handling);
            let every = progress_every(self.spec.settings.ack_wait);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    outcomes = &mut handling => break outcomes,
                    _ = tick.tick() => mark_in_progress(&batch).await,
                }
            }
        };
        self.metrics
            .batch_seconds
            .get_or_create(&self.labels)
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .batch_size
            .get_or_create(&self.labels)
            .observe(batch.len() as f64);

        let settled = batch
            .into_iter()
            .zip(outcomes)
            .map(|(d, outcome)| self.settle_one(d, outcome));
        let mut held = Vec::new();
        for settled in futures::future::join_all(settled).await {
            let (label, result) = match settled {
                Settled::Held(d) => {
                    held.push(*d);
                    ("held", Ok(()))
                }
                Settled::Done(label, result) => (label, result),
            };
            self.metrics
                .messages
                .get_or_create(&ConsumerOutcomeLabels {
                    consumer: self.labels.consumer.clone(),
                    outcome: label,
                })
                .inc();
            if label == "dead_letter" {
                self.metrics
                    .messages_dead_lettered
                    .get_or_create(&self.labels)
                    .inc();
            }
            if let Err(e) = result {
                // The message will be redelivered after ack_wait; handlers
                // are idempotent, so this costs time, not correctness.
                warn!(error = %e, "could not settle message");
            }
        }
        held
    }

    /// The handler's outcomes, one per message, with a panic contained:
    /// after a panic each message is handled alone, and a message whose
    /// handling panics is rejected with the panic's message.
    async fn handle_contained(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let missing = || Outcome::Retry("no outcome from handler".into());
        match AssertUnwindSafe(self.handler.handle(batch))
            .catch_unwind()
            .await
        {
            Ok(mut outcomes) => {
                // A handler that returns fewer outcomes than messages has a
                // bug; retry the rest rather than lose them.
                outcomes.resize_with(batch.len(), missing);
                outcomes
            }
            Err(panic) => {
                warn!(
                    consumer = %self.name, size = batch.len(), panic = ?panic_message(&*panic),
                    "handler panicked; handling the batch's messages one at a time"
                );
                let mut outcomes = Vec::with_capacity(batch.len());
                for d in batch {
                    let one = std::slice::from_ref(d);
                    let outcome = match AssertUnwindSafe(self.handler.handle(one))
                        .catch_unwind()
                        .await
                    {
                        Ok(o) => o.into_iter().next().unwrap_or_else(missing),
                        Err(p) => {
                            Outcome::Reject(format!("handler panicked: {}", panic_message(&*p)))
                        }
                    };
                    outcomes.push(outcome);
                }
                outcomes
            }
        }
    }

    async fn settle_one(&self, d: Delivery, outcome: Outcome) -> Settled {
        match disposition(outcome, d.delivered, &self.spec) {
            Disposition::Ack => Settled::Done("ack", d.msg.ack().await.map_err(|e| e.to_string())),
            Disposition::Nak(delay, reason) => {
                warn!(
                    subject = ?d.subject, seq = d.stream_sequence, delivered = d.delivered,
                    correlation_id = ?d.correlation_id(), reason = ?reason, ?delay,
                    "message will be redelivered"
                );
                let r = d
                    .msg
                    .ack_with(AckKind::Nak(Some(delay)))
                    .await
                    .map_err(|e| e.to_string());
                Settled::Done("retry", r)
            }
            Disposition::Hold(reason) => {
                debug!(seq = d.stream_sequence, reason = ?reason, "message held");
                Settled::Held(Box::new(d))
            }
            Disposition::DeadLetter(reason) => match self.dead_letter(&d, &reason).await {
                Ok(()) => Settled::Done("dead_letter", Ok(())),
                Err(DeadLetterError::Term(e)) => {
                    Settled::Done("dead_letter", Err(format!("terminate failed: {e}")))
                }
                Err(DeadLetterError::NotRecorded(e)) => {
                    warn!(
                        seq = d.stream_sequence, reason = ?reason, error = %e,
                        "cannot record the dead letter; holding the message"
                    );
                    Settled::Held(Box::new(d))
                }
            },
        }
    }

    /// Records the dead letter, publishes its notification to
    /// `<ns>.dlq.<stage>`, then terminates the original.
    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Result<(), DeadLetterError> {
        let letter = DeadLetter {
            stage: self.spec.stage,
            subject: d.subject.clone(),
            stream_sequence: d.stream_sequence,
            delivered: d.delivered,
            consumer: self.name.clone(),
            reason: reason.to_owned(),
            headers: d
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        headers::encode(k).into_owned(),
                        headers::encode(v).into_owned(),
                    )
                })
                .collect(),
            payload: d.payload.clone(),
        };
        let record = self
            .sink
            .record(&letter)
            .await
            .map_err(DeadLetterError::NotRecorded)?;
        warn!(
            subject = ?d.subject, seq = d.stream_sequence, delivered = d.delivered,
            correlation_id = ?d.correlation_id(), reason = ?reason, record,
            "message dead-lettered"
        );
        if let Err(e) = self.notify(d, reason, record).await {
            warn!(record, error = %e, "dead-letter notification failed; the record is kept");
        }
        d.msg
            .ack_with(AckKind::Term)
            .await
            .map_err(|e| DeadLetterError::Term(e.to_string()))
    }

    async fn notify(&self, d: &Delivery, reason: &str, record: i64) -> Result<(), BusError> {
        let ns = self.bus.ns();
        let stage = self.spec.stage;
        let mut pairs: Vec<(&str, String)> = vec![
            (headers::MSG_ID, format!("dlq:{}:{record}", self.name)),
            (
                headers::DLQ_REASON,
                headers::truncate(reason, MAX_HEADER_VALUE).into_owned(),
            ),
            (
                headers::DLQ_SUBJECT,
                headers::truncate(&d.subject, MAX_HEADER_VALUE).into_owned(),
            ),
            (headers::DLQ_SEQUENCE, d.stream_sequence.to_string()),
            (headers::DLQ_DELIVERED, d.delivered.to_string()),
            (headers::DLQ_CONSUMER, self.name.clone()),
            (headers::DLQ_RECORD, record.to_string()),
        ];
        if let Some(c) = d.correlation_id() {
            pairs.push((
                headers::CORRELATION_ID,
                headers::truncate(c, MAX_HEADER_VALUE).into_owned(),
            ));
        }
        let size = wire_size(&pairs);
        let payload = if payload_fits(d.payload.len(), size, self.bus.max_payload()) {
            d.payload.clone()
        } else {
            pairs.push((headers::DLQ_PAYLOAD, "omitted".to_owned()));
            Bytes::new()
        };
        let map = header_map(pairs.iter().map(|(k, v)| (*k, v.as_str())))?;
        self.bus
            .js()
            .publish_with_headers(ns.dlq(stage), map, payload)
            .await
            .map_err(|e| BusError::Unavailable(format!("dead-letter publish failed: {e}")))?
            .await
            .map_err(|e| BusError::Unavailable(format!("dead-letter publish not acked: {e}")))?;
        Ok(())
    }

    /// Holds `held` (marking them in progress) until the handler is ready
    /// again; false when `shutdown` came first.
    async fn wait_for_recovery(
        &self,
        held: &[Delivery],
        probes: &mut u32,
        shutdown: &CancellationToken,
    ) -> bool {
        use tokio::time::Instant;
        let every = progress_every(self.spec.settings.ack_wait);
        let mut next_progress = Instant::now();
        let mut next_probe = Instant::now() + probe_delay(*probes);
        loop {
            let now = Instant::now();
            if now >= next_progress {
                mark_in_progress(held).await;
                next_progress = now + every;
            }
            if now >= next_probe {
                let ready = tokio::time::timeout(
                    PROBE_TIMEOUT,
                    AssertUnwindSafe(self.handler.ready()).catch_unwind(),
                )
                .await;
                if matches!(ready, Ok(Ok(true))) {
                    return true;
                }
                *probes = probes.saturating_add(1);
                next_probe = Instant::now() + probe_delay(*probes);
            }
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep_until(next_progress.min(next_probe)) => {}
            }
        }
    }
}

/// Tells the server the messages are still being worked on, so their
/// `ack_wait` starts again.
async fn mark_in_progress(batch: &[Delivery]) {
    let marks = batch.iter().map(|d| d.msg.ack_with(AckKind::Progress));
    for r in futures::future::join_all(marks).await {
        if let Err(e) = r {
            debug!(error = %e, "could not mark a message in progress");
        }
    }
}

/// The bytes headers take on the wire (`NATS/1.0`, `name: value` lines).
fn wire_size(pairs: &[(&str, String)]) -> usize {
    let lines: usize = pairs
        .iter()
        .map(|(k, v)| k.len() + 2 + headers::encode(v).len() + 2)
        .sum();
    "NATS/1.0\r\n".len() + lines + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max_deliver: i64) -> ConsumerSpec {
        ConsumerSpec {
            stage: Stage::Detector,
            settings: ConsumerSettings {
                max_deliver,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 100,
            },
            batch_size: 10,
            linger: Duration::from_millis(5),
            nak_base: Duration::from_millis(100),
            nak_max: Duration::from_secs(1),
        }
    }

    #[test]
    fn nak_delay_doubles_per_delivery_up_to_the_cap() {
        let (b, m) = (Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(nak_delay(b, m, 1), Duration::from_millis(100));
        assert_eq!(nak_delay(b, m, 2), Duration::from_millis(200));
        assert_eq!(nak_delay(b, m, 4), Duration::from_millis(800));
        assert_eq!(nak_delay(b, m, 5), m);
        assert_eq!(nak_delay(b, m, 1000), m);
    }

    #[test]
    fn retries_are_naked_until_max_deliver_then_dead_lettered() {
        let s = spec(3);
        assert_eq!(
            disposition(Outcome::Retry("busy".into()), 1, &s),
            Disposition::Nak(Duration::from_millis(100), "busy".into())
        );
        assert_eq!(
            disposition(Outcome::Retry("busy".into()), 3, &s),
            Disposition::DeadLetter("gave up after 3 deliveries: busy".into())
        );
        assert_eq!(disposition(Outcome::Ack, 3, &s), Disposition::Ack);
        assert_eq!(
            disposition(Outcome::Reject("bad".into()), 1, &s),
            Disposition::DeadLetter("bad".into())
        );
    }

    #[test]
    fn an_unavailable_dependency_holds_the_message_whatever_its_delivery_count() {
        let s = spec(3);
        for delivered in [1, 3, 100] {
            assert_eq!(
                disposition(Outcome::Unavailable("db down".into()), delivered, &s),
                Disposition::Hold("db down".into())
            );
        }
    }

    #[test]
    fn readiness_probes_back_off_to_five_seconds() {
        assert_eq!(probe_delay(0), Duration::from_millis(250));
        assert_eq!(probe_delay(1), Duration::from_millis(500));
        assert_eq!(probe_delay(4), Duration::from_secs(4));
        assert_eq!(probe_delay(5), Duration::from_secs(5));
        assert_eq!(probe_delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn held_messages_are_marked_in_progress_well_before_ack_wait() {
        assert_eq!(
            progress_every(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            progress_every(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert!(progress_every(Duration::from_secs(600)) < Duration::from_secs(600));
        assert_eq!(
            progress_every(Duration::from_millis(30)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn a_payload_travels_only_when_it_fits_under_max_payload() {
        let max = 1024 * 1024;
        assert!(payload_fits(1000, 300, max));
        assert!(!payload_fits(max, 300, max));
        assert!(!payload_fits(max - 300, 300, max));
        assert!(!payload_fits(usize::MAX, 1, max));
    }

    #[test]
    fn wire_size_counts_encoded_values() {
        let plain = wire_size(&[("A", "b".to_owned())]);
        let hostile = wire_size(&[("A", "\n".to_owned())]);
        assert_eq!(hostile, plain + 2);
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        let a: Box<dyn Any + Send> = Box::new("boom");
        let b: Box<dyn Any + Send> = Box::new(String::from("bang"));
        let c: Box<dyn Any + Send> = Box::new(42);
        assert_eq!(panic_message(&*a), "boom");
        assert_eq!(panic_message(&*b), "bang");
        assert_eq!(panic_message(&*c), "a panic without a message");
    }
}
