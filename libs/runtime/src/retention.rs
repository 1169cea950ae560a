//! The retention task: every `retention.sweep_ms`, makes the events' day
//! partitions of today and the next `retention.partitions_ahead_days`
//! days (and of any day the default partition caught), then deletes the
//! idempotency keys and published outbox rows past the retention the
//! database holds for them (`awfdrs retention`), `retention.batch` rows
//! per statement, and drops the events' day partitions past theirs; rows
//! gone are counted in `awfdrs_pruned_rows_total{table}`. All of it is
//! idempotent, so any number of processes may run it.

use std::time::Duration;

use awfdrs_store::{Kept, StoreError};
use awfdrs_telemetry::{PrunedLabels, TaskHealth};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::Context;

/// Runs the retention rounds until `stop`.
pub async fn run(ctx: Context, health: TaskHealth, stop: CancellationToken) {
    let period = Duration::from_millis(ctx.config.retention.sweep_ms);
    let batch = ctx.config.retention.batch;
    let ahead = ctx.config.retention.partitions_ahead_days;
    crate::rounds::every(period, "prune past retention", health, stop, || async {
        let made = ctx.store.make_event_partitions(ahead).await?;
        if made > 0 {
            info!(made, "made events partitions");
        }
        for kept in Kept::ALL {
            let n = ctx.store.prune(kept, batch).await?;
            if n > 0 {
                ctx.metrics
                    .pruned_rows
                    .get_or_create(&PrunedLabels {
                        table: kept.as_str(),
                    })
                    .inc_by(n);
                info!(table = kept.as_str(), deleted = n, "pruned past retention");
            }
        }
        Ok::<_, StoreError>(())
    })
    .await;
}
