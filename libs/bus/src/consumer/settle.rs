//! Settling a batch: acks, naks, dead letters (recorded, announced, then
//! terminated), holding while a dependency is down, and containing a
//! handler's panic.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::{self, AckKind};
use awfdrs_telemetry::{ConsumerLabels, ConsumerOutcomeLabels, Metrics};
use bytes::Bytes;
use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::headers;
use crate::{Bus, BusError, header_map};

use super::policy::{
    MAX_HEADER_VALUE, PROBE_TIMEOUT, payload_fits, probe_delay, progress_every, wire_size,
};
use super::{
    ConsumerSpec, DeadLetter, DeadLetterSink, Delivery, Disposition, Handler, Outcome, Turn,
    disposition,
};
use crate::names::Source;
use crate::topology::source;

impl<H: Handler, S: DeadLetterSink> Loop<H, S> {
    /// After the pull stream ended or failed: an error when the consumer is
    /// gone; otherwise a pause (so a persistent failure cannot spin), then
    /// `true` to go on, or `false` when shutdown came first.
    pub(super) async fn pull_trouble(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<bool, BusError> {
        if !self.consumer_exists().await {
            return Err(BusError::Topology(format!(
                "consumer {} no longer exists",
                self.name
            )));
        }
        tokio::select! {
            () = shutdown.cancelled() => Ok(false),
            () = tokio::time::sleep(super::PULL_ERROR_PAUSE) => Ok(true),
        }
    }

    /// Whether the stage's durable consumer still exists (a server that
    /// cannot be asked counts as yes: the pull will tell).
    pub(super) async fn consumer_exists(&self) -> bool {
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

/// The text of a panic's payload.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
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

pub(super) struct Loop<H, S> {
    pub(super) bus: Bus,
    pub(super) spec: ConsumerSpec,
    pub(super) handler: Arc<H>,
    pub(super) sink: Arc<S>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) labels: ConsumerLabels,
    pub(super) name: String,
}

impl<H: Handler, S: DeadLetterSink> Loop<H, S> {
    /// Handles and settles a batch in its turn; returns the messages to
    /// hold.
    pub(super) async fn settle(&self, batch: Vec<Delivery>, turn: Turn) -> Vec<Delivery> {
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
            let handling = self.handle_contained(&batch, turn);
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
    async fn handle_contained(&self, batch: &[Delivery], turn: Turn) -> Vec<Outcome> {
        let missing = || Outcome::Retry("no outcome from handler".into());
        match AssertUnwindSafe(self.handler.handle_in_turn(batch, turn))
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
    pub(super) async fn wait_for_recovery(
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

#[cfg(test)]
mod tests {
    use std::any::Any;

    use super::panic_message;

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
