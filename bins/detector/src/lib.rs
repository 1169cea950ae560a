//! The detector: the first stage after ingestion. It consumes
//! `<ns>.events.>` in batches, validates each event (the same rules as the
//! gateway, for producers that publish straight to NATS), persists the batch
//! in one transaction, opens or updates the one open incident per failure
//! signature, and announces new incidents on `<ns>.incidents.<tenant>.opened`
//! through the outbox.
//!
//! Any number of detectors may run: the database's unique indexes, not this
//! process's memory, keep events unique and incidents one per signature.

mod announce;
mod handler;

use std::sync::Arc;
use std::time::Duration;

use awfdrs_bus::{ConsumerSpec, Stage};
use awfdrs_guard::{BreakerFeed, FeedSettings};
use awfdrs_runtime::Harness;

pub use handler::DetectorHandler;

/// Starts the detector's tasks in `harness`: `detector.consumers` consumer
/// loops (work) and the breaker feed (background, so it merges what the
/// last batch observed), publishing through the harness's outbox relay.
///
/// # Errors
/// When the consumer cannot be declared.
pub async fn start(harness: &Harness) -> anyhow::Result<()> {
    let ctx = harness.ctx();
    let settings = ctx.consumer_settings();
    ctx.bus.declare_consumer(Stage::Detector, &settings).await?;
    let c = &ctx.config;
    let spec = ConsumerSpec {
        stage: Stage::Detector,
        settings,
        batch_size: c.detector.batch_size,
        linger: Duration::from_millis(c.detector.linger_ms),
        nak_base: Duration::from_millis(c.consumer.nak_base_ms),
        nak_max: Duration::from_millis(c.consumer.nak_max_ms),
        in_flight: c.detector.pipeline,
    };
    let feed = BreakerFeed::new(ctx.breakers.clone(), FeedSettings::default());
    let merge = feed.clone();
    harness.spawn_background("detector.breaker_feed", |stop| async move {
        merge.spawn(stop).await.map_err(anyhow::Error::from)
    });
    let name = "detector.retention";
    let (health, kept) = (ctx.health.task(name), ctx.clone());
    harness.spawn(name, |stop| async move {
        awfdrs_runtime::retention::run(kept, health, stop).await;
        Ok(())
    });
    let handler = Arc::new(DetectorHandler::new(ctx.clone(), feed, harness.relay()));
    let dead_letters = ctx.dead_letter_sink();
    for i in 0..c.detector.consumers {
        let name = format!("detector.consumer.{i}");
        let health = ctx.health.task(&name);
        let (bus, spec, handler, sink, metrics) = (
            ctx.bus.clone(),
            spec.clone(),
            handler.clone(),
            dead_letters.clone(),
            ctx.metrics.clone(),
        );
        harness.spawn(name, |stop| async move {
            awfdrs_bus::consumer::run(bus, spec, handler, sink, metrics, health, stop)
                .await
                .map_err(anyhow::Error::from)
        });
    }
    Ok(())
}
