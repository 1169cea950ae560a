//! `awfdrs_actions{kind,status}` and `awfdrs_held_retries{vendor}`: counted
//! in the database every `coordinator.gauges_ms`, so that they show every coordinator's,
//! scheduler's and operator's actions, not this process's alone. A label
//! that no longer counts anything is dropped rather than left at its last
//! value.

use std::time::Duration;

use awfdrs_runtime::Context;
use awfdrs_store::StoreError;
use awfdrs_telemetry::{ActionLabels, VendorLabels};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Refreshes the gauges every `coordinator.gauges_ms` until `stop`.
pub(crate) async fn run(
    ctx: Context,
    health: awfdrs_telemetry::TaskHealth,
    stop: CancellationToken,
) {
    let every = Duration::from_millis(ctx.config.coordinator.gauges_ms);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        match refresh(&ctx).await {
            Ok(()) => health.ok(),
            Err(e) => {
                warn!(error = %e, "cannot count actions; trying again");
                health.degraded(format!("cannot count actions: {e}"));
            }
        }
    }
    info!("action gauges stopped");
}

/// Counts once.
async fn refresh(ctx: &Context) -> Result<(), StoreError> {
    let actions = ctx.store.action_tally().await?;
    let held = ctx.store.held_by_vendor().await?;
    let m = &ctx.metrics;
    m.actions.clear();
    for (kind, status, n) in actions {
        m.actions
            .get_or_create(&ActionLabels { kind, status })
            .set(n);
    }
    m.held_retries.clear();
    for (vendor, n) in held {
        m.held_retries
            .get_or_create(&VendorLabels { vendor })
            .set(n);
    }
    Ok(())
}
