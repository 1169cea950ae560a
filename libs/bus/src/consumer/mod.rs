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

mod policy;
mod settle;
mod turn;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::MessagesErrorKind;
use async_nats::jetstream::{self};
use awfdrs_telemetry::{ConsumerLabels, Metrics, TaskHealth};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::headers;
use crate::names::{Source, Stage};
use crate::topology::{ConsumerSettings, source};
use crate::{Bus, BusError, decoded_headers, lookup};

pub use policy::{Disposition, disposition, nak_delay, payload_fits, probe_delay, progress_every};
use settle::Loop;
pub use settle::panic_message;
pub use turn::{Turn, Turns};

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

    /// Handles a batch in its [`Turn`] among the batches its loop has in
    /// flight (`ConsumerSpec::in_flight`). By default the whole batch waits
    /// for its turn, so batches are handled one after another, in order; a
    /// handler that overlaps part of its work does that part before
    /// [`Turn::wait`] and keeps the turn until it committed.
    fn handle_in_turn(
        &self,
        batch: &[Delivery],
        turn: Turn,
    ) -> impl Future<Output = Vec<Outcome>> + Send {
        async move {
            turn.wait().await;
            let outcomes = self.handle(batch).await;
            turn.pass();
            outcomes
        }
    }

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

/// How a stage consumes.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub stage: Stage,
    pub settings: ConsumerSettings,
    pub batch_size: usize,
    pub linger: Duration,
    pub nak_base: Duration,
    pub nak_max: Duration,
    /// Batches handled at once, each in its [`Turn`]; 1 handles one batch
    /// after another.
    pub in_flight: usize,
}

/// Runs the consumer of `spec.stage` until `shutdown` is cancelled, then
/// finishes the batch in hand and returns. Messages buffered or held but not
/// yet settled are left unacked and are redelivered after `ack_wait`.
/// Dead letters are recorded in `sink` before their originals are
/// terminated. While the loop cannot do its work (a dependency is down, its
/// pull stream is being rebuilt) `health` says so, with the reason.
///
/// # Errors
/// When the consumer cannot be reached at start, or is deleted under the
/// loop.
pub async fn run<H: Handler, S: DeadLetterSink>(
    bus: Bus,
    spec: ConsumerSpec,
    handler: Arc<H>,
    sink: Arc<S>,
    metrics: Arc<Metrics>,
    health: TaskHealth,
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
    let depth = spec.in_flight.max(1);
    let lp = Arc::new(Loop {
        bus,
        spec,
        handler,
        sink,
        metrics,
        labels,
        name,
    });

    let mut held: Vec<Delivery> = Vec::new();
    // Batches being handled, each in its turn, at most `depth` at once.
    let mut in_flight: JoinSet<Vec<Delivery>> = JoinSet::new();
    let mut turns = Turns::default();
    // Readiness probes made through consecutive holds that did not clear.
    let mut probes = 0u32;
    loop {
        // A full pipeline waits for a batch to finish; a batch that held
        // messages lets the others finish before the loop holds.
        while in_flight.len() >= depth || (!held.is_empty() && !in_flight.is_empty()) {
            if let Some(done) = in_flight.join_next().await {
                held.extend(joined(done, &lp.name));
            }
        }
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
            health.degraded(format!(
                "a dependency is down; holding {} messages and not fetching",
                held.len()
            ));
            if !lp.wait_for_recovery(&held, &mut probes, &shutdown).await {
                break;
            }
            info!(consumer = %lp.name, held = held.len(), "dependency answers again; handling the held messages");
            let mut queue: VecDeque<Delivery> = std::mem::take(&mut held).into();
            while !queue.is_empty() {
                let n = queue.len().min(lp.spec.batch_size.max(1));
                let chunk: Vec<Delivery> = queue.drain(..n).collect();
                held = lp.settle(chunk, Turn::first()).await;
                if !held.is_empty() {
                    held.extend(queue.drain(..));
                    break;
                }
            }
            if held.is_empty() {
                probes = 0;
                health.ok();
            }
            continue;
        }
        let stream = match messages.as_mut() {
            Some(s) => s,
            None => match pull(&consumer, &lp.spec, &lp.name).await {
                Ok(s) => {
                    health.ok();
                    messages.insert(s)
                }
                Err(e) => {
                    warn!(consumer = %lp.name, error = %e, "cannot pull");
                    health.degraded(format!("cannot pull: {e}"));
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(PULL_ERROR_PAUSE) => {}
                    }
                    continue;
                }
            },
        };
        let mut batch: Vec<Delivery> = Vec::with_capacity(lp.spec.batch_size);
        // Wait for the first message of a batch, or for shutdown; a batch
        // in flight that finishes meanwhile is looked at first.
        let first = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                held.extend(joined(done, &lp.name));
                continue;
            }
            next = stream.next() => next,
        };
        match first {
            None => {
                // The pull stream gave up (the server ended it): rebuild it,
                // unless the consumer itself is gone, which only an operator
                // or a broken deployment does: then stop loudly.
                warn!(consumer = %lp.name, "message stream ended; rebuilding it");
                health.degraded("the server ended the pull stream; rebuilding it");
                messages = None;
                if lp.pull_trouble(&shutdown).await? {
                    continue;
                }
                break;
            }
            Some(Err(e)) if e.kind() == MessagesErrorKind::ConsumerDeleted => {
                finish(&mut in_flight, &lp.name).await;
                return Err(BusError::Topology(format!(
                    "consumer {} was deleted",
                    lp.name
                )));
            }
            Some(Err(e)) => {
                // A lost heartbeat or a reconnect: the stream recovers by
                // itself, unless the consumer is gone (a missed heartbeat
                // is all a deleted consumer may show); pause so a
                // persistent failure cannot spin.
                warn!(consumer = %lp.name, error = %e, "pull error");
                if lp.pull_trouble(&shutdown).await? {
                    continue;
                }
                break;
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
        let turn = turns.next_turn();
        if depth == 1 {
            held = lp.settle(batch, turn).instrument(span).await;
        } else {
            let lp = lp.clone();
            in_flight.spawn(async move { lp.settle(batch, turn).await }.instrument(span));
        }
    }
    // The batches in hand are finished; what they held is redelivered
    // after ack_wait.
    finish(&mut in_flight, &lp.name).await;
    info!(consumer = %lp.name, "consumer stopped");
    Ok(())
}

/// What a finished batch held; a batch whose task died holds nothing (its
/// messages are redelivered after `ack_wait`).
fn joined(done: Result<Vec<Delivery>, tokio::task::JoinError>, name: &str) -> Vec<Delivery> {
    done.unwrap_or_else(|e| {
        warn!(consumer = %name, error = %e, "a batch's task ended without settling");
        Vec::new()
    })
}

/// Waits for every batch in flight to finish.
async fn finish(in_flight: &mut JoinSet<Vec<Delivery>>, name: &str) {
    while let Some(done) = in_flight.join_next().await {
        drop(joined(done, name));
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
