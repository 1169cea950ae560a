//! The pipeline modes: the real detector (and, over HTTP, the real
//! gateway) fed by NATS publishes or HTTP posts, with a commit probe
//! timing each event from its send to its commit.

use std::time::Duration;

use anyhow::{Context as _, bail};
use awfdrs_bus::{Bus, Stage};
use awfdrs_runtime::{Context, Harness};
use awfdrs_store::Store;
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::load::{self, Post};
use super::machine::CpuSnapshot;
use super::outcome::{BatchStats, Outcome, window};
use super::probe::{self, Probe};
use super::{Bench, Mode};

impl Bench {
    /// Runs one pipeline mode (or the warm-up) with `n` events.
    pub(super) async fn pipeline(&self, mode: Mode, n: u64) -> anyhow::Result<Outcome> {
        let ctx = Context::connect(self.config_for(mode)).await?;
        ctx.bus.declare_streams().await?;
        let slug = format!("bench-{}", mode.tag());
        let api_key = awfdrs_domain::new_api_key();
        let tenant = ctx.store.create_tenant(&slug, &api_key).await?;

        let shutdown = CancellationToken::new();
        let harness = Harness::start(ctx.clone(), shutdown.clone())?;
        awfdrs_detector::start(&harness).await?;
        let mut base = String::new();
        if matches!(mode, Mode::Http | Mode::HttpBatch) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            base = format!("http://{}", awfdrs_gateway::start_on(&harness, listener)?);
        }
        let workers = tokio::spawn(harness.run());
        // Its own connection, so the probe never waits for the detector's pool.
        let probe_store = Store::connect(self.db.url(), 1, Duration::from_secs(5)).await?;
        let probe = Probe::start(
            probe_store.clone(),
            tenant.id,
            Duration::from_millis(self.args.probe_ms),
        );

        let a = &self.args;
        let events = self.events(mode);
        let n = (n, self.budget());
        let cpu = CpuSnapshot::take();
        let sent = match mode {
            Mode::Nats | Mode::NatsMax | Mode::Warmup => {
                let rate = (mode == Mode::Nats).then_some(a.rate);
                let producer = self.producer(mode).await?;
                load::publish(producer, events, &slug, n, rate, a.in_flight).await
            }
            Mode::Http => load::post(&base, &api_key, events, n, a.http_concurrency, Post::Single)
                .await
                .context("posting events")?,
            Mode::HttpBatch => {
                let how = Post::Batch(a.http_batch);
                load::post(&base, &api_key, events, n, a.http_batch_concurrency, how)
                    .await
                    .context("posting batches")?
            }
            Mode::Ceiling
            | Mode::SlowClients
            | Mode::Analysis
            | Mode::AnalysisMax
            | Mode::Remediation
            | Mode::RemediationMax
            | Mode::Scheduler
            | Mode::Notifier
            | Mode::Loop
            | Mode::Loop2
            | Mode::Storm => {
                bail!("{mode:?} is not a pipeline mode")
            }
        };
        wait_drained(&ctx.bus, sent.accepted, self.drain_deadline()).await?;
        let cpu = CpuSnapshot::take().since(&cpu);

        let seen = probe.finish(&probe_store, tenant.id).await;
        let times = probe_store.bench_event_times(tenant.id).await?;
        let latencies = probe::latencies(&times, &seen);
        let tally = probe_store.bench_tally(tenant.id).await?;

        shutdown.cancel();
        super::stop_workers(workers).await;
        let consumer = BatchStats::from_metrics(&ctx.metrics.render());
        probe_store.pool().close().await;
        ctx.store.pool().close().await;
        let end = latencies.last_commit.unwrap_or_else(Utc::now);
        Ok(Outcome {
            mode,
            label: self.label(mode),
            window: window(sent.started, end),
            sent,
            stored: u64::try_from(tally.events).unwrap_or(0),
            tally: Some(tally),
            latencies: Some(latencies),
            consumer,
            cpu,
        })
    }
}

/// Waits until the events stream holds `expected` messages and the detector
/// has acknowledged all of them, which it does only after their commit.
async fn wait_drained(bus: &Bus, expected: u64, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let stored = bus.events_stored().await.unwrap_or(0);
        let backlog = bus.consumer_backlog(Stage::Detector).await.ok();
        if stored >= expected && backlog == Some(0) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the detector did not drain in {within:?}: {stored} of {expected} events stored, \
                 {backlog:?} not acknowledged"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
