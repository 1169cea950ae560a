//! The detector: the first stage after ingestion. It consumes
//! `<ns>.events.>` in batches, validates each event (the same rules as the
//! gateway, for producers that publish straight to NATS), persists the batch
//! in one transaction, opens or updates the one open incident per failure
//! signature, and announces new incidents on `<ns>.incidents.<tenant>.opened`
//! through the outbox.
//!
//! Any number of detectors may run: the database's unique indexes, not this
//! process's memory, keep events unique and incidents one per signature.

mod handler;
mod relay;

use std::sync::Arc;
use std::time::Duration;

use awfdrs_bus::{ConsumerSpec, Stage};
use awfdrs_guard::{BreakerFeed, BreakerOptions, Breakers, FeedSettings};
use awfdrs_runtime::Context;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use handler::DetectorHandler;

/// Runs the detector until `shutdown`, then finishes the batch in hand.
///
/// # Errors
/// When the consumer cannot be declared or reached.
pub async fn run(ctx: Context, shutdown: CancellationToken) -> anyhow::Result<()> {
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
    };
    // The relay and the breaker feed stop after the consumer (the feed
    // merges what it still holds), without stopping anything else.
    let after = shutdown.child_token();
    let relay = tokio::spawn(relay::sweep(ctx.clone(), after.clone()));
    let breakers = Breakers::open(
        &ctx.bus,
        ctx.store.clone(),
        ctx.rules.clone(),
        ctx.metrics.clone(),
        BreakerOptions::new(format!("detector-{}", std::process::id())),
    )
    .await?;
    let watch = breakers.spawn(after.clone());
    let feed = BreakerFeed::new(breakers, FeedSettings::default());
    let merge = feed.spawn(after.clone());
    let handler = Arc::new(DetectorHandler::new(ctx.clone(), feed));
    let dead_letters = ctx.dead_letter_sink();
    let mut loops = tokio::task::JoinSet::new();
    let loops_stop = shutdown.child_token();
    for _ in 0..c.detector.consumers {
        loops.spawn(awfdrs_bus::consumer::run(
            ctx.bus.clone(),
            spec.clone(),
            handler.clone(),
            dead_letters.clone(),
            ctx.metrics.clone(),
            loops_stop.clone(),
        ));
    }
    let mut result = Ok(());
    while let Some(joined) = loops.join_next().await {
        let joined = joined.map_err(anyhow::Error::from).and_then(|r| Ok(r?));
        // A loop ends by itself only when told to: anything else is a
        // failure the process must not hide.
        let joined = joined.and_then(|()| {
            if loops_stop.is_cancelled() {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "a consumer loop stopped without being asked to"
                ))
            }
        });
        if let Err(e) = joined {
            // One loop failing stops the others; the caller decides.
            loops_stop.cancel();
            result = result.and(Err(e));
        }
    }
    after.cancel();
    let _ = tokio::join!(relay, merge, watch);
    info!("detector stopped");
    result
}
