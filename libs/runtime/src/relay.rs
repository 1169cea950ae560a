//! The outbox relay: publishes what a worker's commit wrote to the outbox,
//! with the rows' deterministic message ids, then marks the rows. A worker
//! hands its commit's rows over right after committing
//! ([`Relay::publish`]); the sweeper publishes rows left behind by a crash
//! between commit and publish. One relay serves every worker of a process,
//! whatever subjects their rows name.
//!
//! Neither dies: a publish error leaves the row for the next sweep, and a
//! panic in one round is contained and logged; the sweeper stops only at
//! shutdown.

use std::time::Duration;

use awfdrs_bus::Outgoing;
use awfdrs_store::{Committed, OutboxRow};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::Context;

/// Rows one sweep publishes at most.
const SWEEP_LIMIT: i64 = 500;

/// Publishes committed outbox rows. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Relay {
    ctx: Context,
}

impl Relay {
    pub(crate) fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    /// Publishes what `committed` wrote and marks the rows the broker
    /// acked. Never fails: what is not marked is published by the sweeper
    /// later, with the same message ids.
    pub async fn publish(&self, committed: Committed) {
        self.publish_rows(committed.outbox).await;
    }

    async fn publish_rows(&self, rows: Vec<OutboxRow>) {
        if rows.is_empty() {
            return;
        }
        if let Err(panic) = crate::contain(self.publish_contained(rows)).await {
            self.ctx.metrics.publish_failures.inc();
            error!(panic = ?panic, "outbox publish panicked; the sweeper will retry");
        }
    }

    async fn publish_contained(&self, rows: Vec<OutboxRow>) {
        let ctx = &self.ctx;
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

    /// Every `outbox.sweep_ms`, publishes rows older than two periods,
    /// until `stop`.
    pub(crate) async fn sweep(&self, stop: CancellationToken) {
        let period = Duration::from_millis(self.ctx.config.outbox.sweep_ms);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(panic) = crate::contain(self.sweep_once()).await {
                error!(panic = ?panic, "outbox sweep panicked; sweeping again next period");
            }
        }
        info!("outbox sweeper stopped");
    }

    async fn sweep_once(&self) {
        let min_age = self.ctx.config.outbox.sweep_ms.saturating_mul(2);
        match self.ctx.store.stale_outbox(min_age, SWEEP_LIMIT).await {
            Ok(rows) => self.publish_rows(rows).await,
            Err(e) => warn!(error = %e, "outbox sweep failed"),
        }
    }
}
