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

/// Refreshes the gauges every `coordinator.gauges_ms` until `stop`.
pub(crate) async fn run(
    ctx: Context,
    health: awfdrs_telemetry::TaskHealth,
    stop: CancellationToken,
) {
    let every = Duration::from_millis(ctx.config.coordinator.gauges_ms);
    awfdrs_runtime::rounds::every(every, "count actions", health, stop, || refresh(&ctx)).await;
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
