//! The breakers' background work: the KV watch that keeps the local view
//! current, and the clock that persists time-driven transitions so they are
//! recorded when they happen, not when the next writer comes by.

use std::time::Duration;

use awfdrs_safety::breaker::{self, BreakerState};
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::Breakers;

/// Pause before watching again after the watch failed or ended.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

impl Breakers {
    /// Starts the watch and the clock; both stop when `shutdown` fires.
    /// Await the handle to know they have.
    #[must_use]
    pub fn spawn(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let watch = tokio::spawn(self.clone().watch(shutdown.clone()));
        let clock = tokio::spawn(self.clone().clock(shutdown));
        tokio::spawn(async move {
            let _ = tokio::join!(watch, clock);
        })
    }

    async fn watch(self, shutdown: CancellationToken) {
        let view = &self.inner.view;
        while !shutdown.is_cancelled() {
            match self.inner.bucket.watch().await {
                Ok(changes) => {
                    let _open = self
                        .inner
                        .recorder
                        .metrics
                        .kv_watch_open(awfdrs_bus::names::BREAKERS_BUCKET);
                    let mut changes = std::pin::pin!(changes);
                    loop {
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            change = changes.next() => match change {
                                Some((vendor, Some(raw))) => view.put(&vendor, raw),
                                Some((vendor, None)) => view.remove(&vendor),
                                None => break,
                            },
                        }
                    }
                    tracing::warn!("breaker watch ended; watching again");
                }
                Err(e) => tracing::warn!(error = %e, "cannot watch breakers; retrying"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(REWATCH_DELAY) => {}
            }
        }
    }

    async fn clock(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.inner.options.tick_interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            for vendor in self.due(crate::now()) {
                if let Err(e) = self.tick(&vendor).await {
                    tracing::warn!(vendor, error = %e, "cannot persist breaker transition");
                }
            }
        }
    }

    /// Vendors whose stored breaker the clock has moved on by `now`.
    fn due(&self, now: crate::Timestamp) -> Vec<String> {
        let rules = self.inner.rules.current();
        self.inner
            .view
            .all()
            .iter()
            .filter(|(vendor, held)| {
                held.breaker.as_ref().is_some_and(|b| {
                    b.state() != BreakerState::Closed
                        && breaker::tick(b, &rules.vendor(vendor).breaker, now)
                            .1
                            .is_some()
                })
            })
            .map(|(vendor, _)| vendor.clone())
            .collect()
    }
}
