//! The coordinator: the stage after the analyzer. It consumes
//! `<ns>.decisions.<tenant>` and turns each decision into one action, after
//! one admission step in a fixed order: the tenant's mode and pause, the
//! vendor's breaker (the process's watched view), the hard limits (reserved,
//! so concurrent coordinators cannot overshoot), then the tenant's and the
//! vendor's rate limits. A retry becomes a scheduled action due when its
//! policy says (and not before a `Retry-After`); a retry an open breaker
//! blocks becomes a hold that consumes no attempt; a retry past a hard
//! limit or its policy's maximum becomes an escalation, published on
//! `<ns>.escalations.<tenant>`. In one transaction per decision it records
//! the action, moves the incident to `ACTIONED` and writes the escalation to
//! the outbox.
//!
//! Held retries are released by a background task (`coordinator.holds`,
//! every `coordinator.hold_check_ms`) once their vendor's breaker lets
//! retries through: half-open, at most its probe count at a time; closed,
//! paced by the vendor's rate limit. The same task reports each released
//! probe retry's outcome to its breaker ([`probes`]). Retries waiting for
//! an operator move on in another (`coordinator.approvals`, as often):
//! approved ones, and those a pause held once it ends, through the same
//! safety checks.
//!
//! An action's id is a UUIDv5 of (incident, kind, attempt) and a decision
//! makes at most one, so a redelivery or a competing coordinator makes none
//! twice.

mod admission;
mod approvals;
mod gauges;
mod handler;
mod holds;
mod probes;

use std::sync::Arc;
use std::time::Duration;

use awfdrs_bus::{ConsumerSpec, Stage};
use awfdrs_runtime::Harness;

pub use handler::CoordinatorHandler;

/// The actor the coordinator's timeline entries name.
pub const ACTOR: &str = "coordinator";

/// Starts the coordinator's consumer loop in `harness`, publishing through
/// the harness's outbox relay.
///
/// # Errors
/// When the consumer cannot be declared.
pub async fn start(harness: &Harness) -> anyhow::Result<()> {
    let ctx = harness.ctx();
    let settings = ctx.consumer_settings();
    ctx.bus
        .declare_consumer(Stage::Coordinator, &settings)
        .await?;
    let c = &ctx.config;
    let spec = ConsumerSpec {
        stage: Stage::Coordinator,
        settings,
        batch_size: c.coordinator.batch_size,
        linger: Duration::from_millis(c.coordinator.linger_ms),
        nak_base: Duration::from_millis(c.consumer.nak_base_ms),
        nak_max: Duration::from_millis(c.consumer.nak_max_ms),
        in_flight: 1,
    };
    let handler = Arc::new(CoordinatorHandler::new(ctx.clone(), harness.relay()));
    let name = "coordinator.consumer";
    let health = ctx.health.task(name);
    let (bus, sink, metrics) = (ctx.bus.clone(), ctx.dead_letter_sink(), ctx.metrics.clone());
    harness.spawn(name, |stop| async move {
        awfdrs_bus::consumer::run(bus, spec, handler, sink, metrics, health, stop)
            .await
            .map_err(anyhow::Error::from)
    });
    let name = "coordinator.gauges";
    let health = ctx.health.task(name);
    let counted = ctx.clone();
    harness.spawn_background(name, |stop| async move {
        gauges::run(counted, health, stop).await;
        Ok(())
    });
    let name = "coordinator.holds";
    let health = ctx.health.task(name);
    let (ctx, relay) = (ctx.clone(), harness.relay());
    harness.spawn(name, |stop| async move {
        holds::run(ctx, relay, health, stop).await;
        Ok(())
    });
    let name = "coordinator.approvals";
    let (ctx, relay) = (harness.ctx().clone(), harness.relay());
    let health = ctx.health.task(name);
    harness.spawn(name, |stop| async move {
        approvals::run(ctx, relay, health, stop).await;
        Ok(())
    });
    Ok(())
}
