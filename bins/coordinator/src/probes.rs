//! Reporting released probe retries to their breaker. A half-open breaker's
//! probe slot is held by the retry released into it (its action id) until
//! the retry reports: the workflow recovered after it (`SUCCEEDED`, enough
//! of them close the breaker) or a later failure of the same run failed it
//! (`FAILED`, which opens the breaker again). A retry cancelled before it
//! ran reports nothing: its slot expires after the breaker's probe timeout,
//! counted as failed. Each round reads the outcomes from the actions, so a
//! report lost to a crash is made again next round (a report for a slot
//! already released is ignored).

use awfdrs_domain::ActionStatus;
use awfdrs_guard::{BreakerState, ProbeResult};
use awfdrs_runtime::Context;
use tracing::info;
use uuid::Uuid;

use crate::admission::AdmissionError;

/// Reports every finished probe retry of every half-open breaker.
///
/// # Errors
/// When the actions cannot be read or a breaker cannot be written.
pub(crate) async fn report(ctx: &Context) -> Result<(), AdmissionError> {
    for view in ctx.breakers.list(awfdrs_guard::now()) {
        if view.state != BreakerState::HalfOpen || view.probes_in_flight == 0 {
            continue;
        }
        let holders: Vec<Uuid> = ctx
            .breakers
            .probe_holders(&view.vendor)
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect();
        for (id, status) in ctx.store.finished_actions(&holders).await? {
            let result = match status {
                ActionStatus::Succeeded => ProbeResult::Success,
                ActionStatus::Failed => ProbeResult::Failure,
                _ => continue,
            };
            let moved = ctx
                .breakers
                .report_probe(&view.vendor, &id.to_string(), result)
                .await?;
            info!(
                vendor = %view.vendor, retry = %id, ?result,
                breaker = ?moved.map(|t| t.to), "probe retry reported"
            );
        }
    }
    Ok(())
}
