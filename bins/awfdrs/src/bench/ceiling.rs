//! The raw-ceiling mode: pipelined JetStream publishes to a bare stream,
//! and the bus's consumer loop with the detector's batch size and linger
//! around a handler that does the least a durable pipeline must: one
//! batched insert of the payloads into a bare table per batch, then ack.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use awfdrs_bus::{ConsumerSpec, Delivery, Handler, Outcome, Stage};
use awfdrs_runtime::Context;
use awfdrs_store::{BareRow, Store};
use chrono::Utc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::load;
use super::machine::CpuSnapshot;
use super::outcome::{self, BatchStats, window};
use super::{Bench, Mode};

/// Inserts each batch into the bare table and counts what it committed.
#[derive(Debug)]
pub struct BareHandler {
    pub store: Store,
    pub committed: watch::Sender<u64>,
}

impl Handler for BareHandler {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let rows: Vec<BareRow<'_>> = batch
            .iter()
            .map(|d| BareRow {
                stream_seq: d.stream_sequence,
                subject: &d.subject,
                payload: &d.payload,
            })
            .collect();
        match self.store.bench_insert_bare(&rows).await {
            Ok(()) => {
                self.committed.send_modify(|n| *n += batch.len() as u64);
                vec![Outcome::Ack; batch.len()]
            }
            Err(e) => vec![Outcome::Retry(format!("bare insert failed: {e}")); batch.len()],
        }
    }
}

impl Bench {
    /// The consumer settings of the detector, for the ceiling's consumer.
    fn consumer_spec(&self, ctx: &Context) -> ConsumerSpec {
        let c = &self.config;
        ConsumerSpec {
            stage: Stage::Detector,
            settings: ctx.consumer_settings(),
            batch_size: c.detector.batch_size,
            linger: Duration::from_millis(c.detector.linger_ms),
            nak_base: Duration::from_millis(c.consumer.nak_base_ms),
            nak_max: Duration::from_millis(c.consumer.nak_max_ms),
            in_flight: 1,
        }
    }

    /// Runs the raw-ceiling mode: a bare stream, the bare consumer, a bare
    /// table.
    pub(super) async fn ceiling(&self) -> anyhow::Result<outcome::Outcome> {
        let mode = Mode::Ceiling;
        let ctx = Context::connect(self.config_for(mode)).await?;
        ctx.bus.declare_streams().await?;
        ctx.bus
            .declare_consumer(Stage::Detector, &ctx.consumer_settings())
            .await?;
        ctx.store.bench_create_bare_table().await?;
        let (committed_tx, mut committed) = watch::channel(0u64);
        let handler = Arc::new(BareHandler {
            store: ctx.store.clone(),
            committed: committed_tx,
        });
        let shutdown = CancellationToken::new();
        let consumer = tokio::spawn(awfdrs_bus::consumer::run(
            ctx.bus.clone(),
            self.consumer_spec(&ctx),
            handler,
            ctx.dead_letter_sink(),
            ctx.metrics.clone(),
            ctx.health.task("bench.ceiling"),
            shutdown.clone(),
        ));
        let producer = self.producer(mode).await?;

        let cpu = CpuSnapshot::take();
        let sent = load::publish(
            producer,
            self.events(mode),
            "bench-ceiling",
            (self.args.events, self.budget()),
            None,
            self.args.in_flight,
        )
        .await;
        let all = sent.accepted;
        let done = tokio::time::timeout(self.drain_deadline(), committed.wait_for(|n| *n >= all));
        if !matches!(done.await, Ok(Ok(_))) {
            bail!(
                "the bare consumer committed {} of {all} messages in time",
                *committed.borrow()
            );
        }
        let end = Utc::now();
        let cpu = CpuSnapshot::take().since(&cpu);

        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), consumer).await;
        let stored = u64::try_from(ctx.store.bench_bare_rows().await?).unwrap_or(0);
        ctx.store.bench_drop_bare_table().await?;
        Ok(outcome::Outcome {
            mode,
            label: self.label(mode),
            window: window(sent.started, end),
            sent,
            stored,
            tally: None,
            latencies: None,
            consumer: BatchStats::from_metrics(&ctx.metrics.render()),
            cpu,
        })
    }
}
