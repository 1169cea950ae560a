//! A breaker that opens while incidents of its vendor are open is a
//! material change: each such incident gets a new decision (trigger
//! `breaker-opened:<vendor>:<opened_at_ms>`), which supersedes the last.
//! Every analyzer looks; the decision's key makes one of them record it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use awfdrs_analysis::Trigger;
use awfdrs_guard::BreakerState;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::AnalyzerHandler;
use crate::handler::Analysed;

/// Every `every`, until `stop`: for each breaker that opened since the last
/// look, a new decision about each open incident of its vendor.
///
/// # Errors
/// Never: failures are logged and looked at again next time.
pub(crate) async fn watch(
    handler: Arc<AnalyzerHandler>,
    every: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut seen: BTreeSet<(String, i64)> = BTreeSet::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let ctx = handler.ctx();
        for b in ctx.breakers.list(awfdrs_guard::now()) {
            let (BreakerState::Open, Some(opened_at)) = (b.state, b.opened_at) else {
                continue;
            };
            let key = (b.vendor.clone(), opened_at.timestamp_millis());
            if seen.contains(&key) {
                continue;
            }
            let open = match ctx.store.open_incidents_of_vendor(&b.vendor).await {
                Ok(open) => open,
                Err(e) => {
                    warn!(vendor = %b.vendor, error = %e, "cannot list the vendor's open incidents; looking again");
                    continue;
                }
            };
            let mut all_done = true;
            for (tenant, incident) in open {
                let trigger = Trigger::BreakerOpened {
                    vendor: b.vendor.clone(),
                    opened_at,
                };
                match handler
                    .analyse(tenant, incident, trigger, opened_at, None)
                    .await
                {
                    Ok(Analysed::Decided(_) | Analysed::AlreadyDecided | Analysed::Missing) => {}
                    Err(e) => {
                        all_done = false;
                        warn!(%incident, error = %e, "breaker-opened analysis failed; trying again");
                    }
                }
            }
            if all_done {
                seen.insert(key);
            }
        }
    }
}
