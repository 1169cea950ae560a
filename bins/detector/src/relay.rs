//! The outbox relay: publishes committed outbox rows with their
//! deterministic message ids, then marks them. The handler publishes its own
//! rows right after its commit; the sweeper picks up rows left behind by a
//! crash between commit and publish.
//!
//! Neither dies: a publish error leaves the row for the next sweep, and a
//! panic in one round is contained and logged; the sweeper logs when it
//! stops, which it does only at shutdown.

use std::time::Duration;

use awfdrs_bus::Outgoing;
use awfdrs_runtime::Context;
use awfdrs_store::OutboxRow;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Publishes `rows` and marks the ones the broker acked. Never fails: what
/// is not marked is published by the sweeper later.
pub(crate) async fn publish(ctx: &Context, rows: Vec<OutboxRow>) {
    if let Err(panic) = awfdrs_runtime::contain(publish_rows(ctx, rows)).await {
        ctx.metrics.publish_failures.inc();
        error!(panic = ?panic, "outbox publish panicked; the sweeper will retry");
    }
}

async fn publish_rows(ctx: &Context, rows: Vec<OutboxRow>) {
    if rows.is_empty() {
        return;
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let msgs = rows
        .into_iter()
        .map(|r| Outgoing {
            subject: r.subject,
            msg_id: r.msg_id,
            correlation_id: r.correlation_id,
            headers: Vec::new(),
            payload: Bytes::from(r.payload.to_string()),
        })
        .collect();
    let results = ctx.bus.publish_many(msgs).await;
    let mut done = Vec::with_capacity(ids.len());
    for (id, result) in ids.into_iter().zip(results) {
        match result {
            Ok(_) => done.push(id),
            Err(e) => {
                ctx.metrics.publish_failures.inc();
                warn!(outbox_id = id, error = %e, "outbox publish failed; the sweeper will retry");
            }
        }
    }
    ctx.metrics.outbox_published.inc_by(done.len() as u64);
    if let Err(e) = ctx.store.mark_published(&done).await {
        warn!(error = %e, "could not mark outbox rows published; they will be published again (same message ids)");
    }
}

/// Periodically publishes rows older than a few sweep periods.
pub(crate) async fn sweep(ctx: Context, shutdown: CancellationToken) {
    let period = Duration::from_millis(ctx.config.detector.outbox_sweep_ms);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(panic) = awfdrs_runtime::contain(sweep_once(&ctx)).await {
            error!(panic = ?panic, "outbox sweep panicked; sweeping again next period");
        }
    }
    info!("outbox sweeper stopped");
}

async fn sweep_once(ctx: &Context) {
    let min_age = ctx.config.detector.outbox_sweep_ms.saturating_mul(2);
    match ctx.store.stale_outbox(min_age, 500).await {
        Ok(rows) => publish(ctx, rows).await,
        Err(e) => warn!(error = %e, "outbox sweep failed"),
    }
}
