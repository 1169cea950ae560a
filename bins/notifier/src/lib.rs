//! The notifier: the stage after the coordinator. It consumes
//! `<ns>.escalations.<tenant>` and tells people, through the tenant's
//! channels, of each escalated incident.
//!
//! In one transaction per escalation it writes one `notifications` row per
//! channel of the tenant's lowest level whose `min_severity` the incident's
//! severity (as the analyzer recorded it) meets ([`recipients`]), with the
//! body that channel's kind takes ([`bodies`]). An incident nobody
//! acknowledged in time goes on to the next level (`notifier.levels`). A notification's id is a UUIDv5 of (incident,
//! channel, level, type) and rows are written `ON CONFLICT DO NOTHING`, so
//! a redelivered escalation or a competing notifier makes none twice. The
//! message is acked after the commit.
//!
//! The `notifier.deliveries` task ([`delivery`]) then POSTs each one,
//! signed with Standard Webhooks (the `webhook-id` is the notification's,
//! the same on every try) with the channel's secret, backing off and
//! honouring `Retry-After`, until delivered or `notifications.max_tries`,
//! recording every try.
//!
//! When an escalated incident resolves, the `notifier.resolutions` task
//! ([`resolutions`]) tells every channel that was told of it, once.

pub mod bodies;
mod delivery;
mod handler;
mod levels;
mod queue;
pub mod recipients;
mod resolutions;

use std::sync::Arc;
use std::time::Duration;

use awfdrs_bus::{ConsumerSpec, Stage};
use awfdrs_runtime::Harness;
use tokio::sync::Notify;

pub use handler::NotifierHandler;

/// Starts the notifier's consumer loop and its delivery task in `harness`.
///
/// # Errors
/// When the consumer cannot be declared or the HTTP client built.
pub async fn start(harness: &Harness) -> anyhow::Result<()> {
    let ctx = harness.ctx();
    let settings = ctx.consumer_settings();
    ctx.bus.declare_consumer(Stage::Notifier, &settings).await?;
    let c = &ctx.config;
    let spec = ConsumerSpec {
        stage: Stage::Notifier,
        settings,
        batch_size: c.notifications.batch_size,
        linger: Duration::from_millis(c.notifications.linger_ms),
        nak_base: Duration::from_millis(c.consumer.nak_base_ms),
        nak_max: Duration::from_millis(c.consumer.nak_max_ms),
        in_flight: 1,
    };
    let queued = Arc::new(Notify::new());
    let client = awfdrs_runtime::outbound::client(
        Duration::from_millis(c.notifications.timeout_ms),
        c.notifications.allow_private_targets,
    )?;
    let handler = Arc::new(NotifierHandler::new(ctx.clone(), queued.clone()));
    let name = "notifier.consumer";
    let health = ctx.health.task(name);
    let (bus, sink, metrics) = (ctx.bus.clone(), ctx.dead_letter_sink(), ctx.metrics.clone());
    harness.spawn(name, |stop| async move {
        awfdrs_bus::consumer::run(bus, spec, handler, sink, metrics, health, stop)
            .await
            .map_err(anyhow::Error::from)
    });
    let name = "notifier.levels";
    let health = ctx.health.task(name);
    let (leveled, wake) = (ctx.clone(), queued.clone());
    harness.spawn(name, |stop| async move {
        levels::run(leveled, wake, health, stop).await;
        Ok(())
    });
    let name = "notifier.resolutions";
    let health = ctx.health.task(name);
    let (resolved, wake) = (ctx.clone(), queued.clone());
    harness.spawn(name, |stop| async move {
        resolutions::run(resolved, wake, health, stop).await;
        Ok(())
    });
    let name = "notifier.deliveries";
    let health = ctx.health.task(name);
    let ctx = ctx.clone();
    harness.spawn(name, |stop| async move {
        delivery::run(ctx, client, queued, health, stop).await;
        Ok(())
    });
    Ok(())
}
