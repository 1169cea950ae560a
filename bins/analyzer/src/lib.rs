//! The analyzer: the stage after the detector. It consumes
//! `<ns>.incidents.<tenant>.opened`, `.reopened` and `.retry_failed` (a
//! later failure of the same run failed its retry), gathers what is known
//! about the incident (its failures, its step's history, its vendor across
//! workflows and tenants, the tenant's past incidents), lets an
//! [`Analyst`](awfdrs_analysis::Analyst) decide, and in one transaction
//! moves the incident to `ANALYZING`, records the decision and writes
//! `<ns>.decisions.<tenant>` to the outbox.
//!
//! A decision is keyed by its incident and trigger, so a redelivery or a
//! competing analyzer makes none twice; a breaker that opens while
//! incidents of its vendor are open makes a new decision for each, naming
//! the one it supersedes.

mod breakers;
mod facts;
mod handler;

use std::sync::Arc;
use std::time::Duration;

use awfdrs_bus::{ConsumerSpec, Stage};
use awfdrs_runtime::Harness;

pub use handler::AnalyzerHandler;

/// The actor the analyzer's timeline entries name.
pub const ACTOR: &str = "analyzer";

/// Starts the analyzer's tasks in `harness`: its consumer loop and the
/// breakers check (work), publishing through the harness's outbox relay.
///
/// # Errors
/// When the consumer cannot be declared.
pub async fn start(harness: &Harness) -> anyhow::Result<()> {
    let ctx = harness.ctx();
    let settings = ctx.consumer_settings();
    ctx.bus.declare_consumer(Stage::Analyzer, &settings).await?;
    let c = &ctx.config;
    let spec = ConsumerSpec {
        stage: Stage::Analyzer,
        settings,
        batch_size: c.analyzer.batch_size,
        linger: Duration::from_millis(c.analyzer.linger_ms),
        nak_base: Duration::from_millis(c.consumer.nak_base_ms),
        nak_max: Duration::from_millis(c.consumer.nak_max_ms),
        in_flight: 1,
    };
    let handler = Arc::new(AnalyzerHandler::new(ctx.clone(), harness.relay()));
    let name = "analyzer.consumer";
    let health = ctx.health.task(name);
    let (bus, sink, metrics, loop_handler) = (
        ctx.bus.clone(),
        ctx.dead_letter_sink(),
        ctx.metrics.clone(),
        handler.clone(),
    );
    harness.spawn(name, |stop| async move {
        awfdrs_bus::consumer::run(bus, spec, loop_handler, sink, metrics, health, stop)
            .await
            .map_err(anyhow::Error::from)
    });
    let every = Duration::from_millis(c.analyzer.breaker_check_ms);
    harness.spawn("analyzer.breakers", move |stop| {
        breakers::watch(handler, every, stop)
    });
    Ok(())
}
