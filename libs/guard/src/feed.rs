//! The detector's feed into the breakers: outcomes counted in memory per
//! vendor, merged into each vendor's breaker with one compare-and-set a few
//! times a second, instead of one per event.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use awfdrs_rules::{ErrorRule, is_slug};
use awfdrs_safety::breaker::{MAX_SOURCES_PER_BUCKET, Outcomes, source_id};
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::Breakers;

/// How the feed batches.
#[derive(Debug, Clone, Copy)]
pub struct FeedSettings {
    /// Time between merges (default 250 ms: four compare-and-sets per vendor
    /// per second at most, per process).
    pub flush_interval: Duration,
    /// Vendors held between merges; observations of further vendors are
    /// dropped (and counted) until the next merge.
    pub max_vendors: usize,
    /// Vendors merged concurrently.
    pub concurrency: usize,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(250),
            max_vendors: 1024,
            concurrency: 16,
        }
    }
}

/// What one merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Vendors whose breaker took the counts.
    pub merged: usize,
    /// Vendors whose merge failed; their counts wait for the next merge.
    pub failed: usize,
    /// Merges that changed a breaker's state.
    pub transitions: usize,
}

/// Whether a failure with this rule counts against the vendor's breaker:
/// only when the rules blame the vendor (`vendor_fault: true`). An auth
/// error from one tenant's bad key, a validation error or a declined card
/// says nothing about the vendor's health.
#[must_use]
pub fn counts_against_vendor(rule: &ErrorRule) -> bool {
    rule.vendor_fault
}

/// Aggregates vendor outcomes; cheap to clone, and [`BreakerFeed::observe`]
/// is a short critical section with no I/O.
#[derive(Debug, Clone)]
pub struct BreakerFeed {
    inner: Arc<FeedInner>,
}

#[derive(Debug)]
struct FeedInner {
    breakers: Breakers,
    settings: FeedSettings,
    pending: Mutex<HashMap<String, Outcomes>>,
    dropped: AtomicU64,
    actor: String,
}

impl BreakerFeed {
    /// A feed into `breakers`; start merging with [`BreakerFeed::spawn`].
    #[must_use]
    pub fn new(breakers: Breakers, settings: FeedSettings) -> Self {
        let actor = format!("feed:{}", breakers.inner.options.worker);
        Self {
            inner: Arc::new(FeedInner {
                breakers,
                settings,
                pending: Mutex::new(HashMap::new()),
                dropped: AtomicU64::new(0),
                actor,
            }),
        }
    }

    /// Counts one call to `vendor`: `success`, or a failure the caller has
    /// already found to be the vendor's fault (see [`counts_against_vendor`],
    /// or use [`BreakerFeed::observe_failure`]). `source` is who saw it
    /// (the tenant slug), for the breaker's `min_distinct_sources`.
    pub fn observe(&self, vendor: &str, success: bool, source: &str) {
        if !is_slug(vendor) {
            return;
        }
        let mut pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(outcomes) = self.slot(&mut pending, vendor.to_owned()) else {
            return;
        };
        if success {
            outcomes.successes += 1;
        } else {
            outcomes.failures += 1;
            add_source(&mut outcomes.sources, source_id(source));
        }
    }

    /// Counts a success of `vendor`.
    pub fn observe_success(&self, vendor: &str, source: &str) {
        self.observe(vendor, true, source);
    }

    /// Counts a failure of `vendor` if `rule` blames the vendor; returns
    /// whether it counted.
    pub fn observe_failure(&self, vendor: &str, rule: &ErrorRule, source: &str) -> bool {
        let counts = counts_against_vendor(rule);
        if counts {
            self.observe(vendor, false, source);
        }
        counts
    }

    /// Observations dropped because too many vendors were held at once.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Merges everything observed so far: one compare-and-set per vendor.
    /// Counts whose merge fails are kept for the next merge.
    pub async fn flush(&self) -> FlushReport {
        let batch = std::mem::take(
            &mut *self
                .inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let inner = &self.inner;
        let results: Vec<_> = futures::stream::iter(batch)
            .map(|(vendor, outcomes)| async move {
                let r = inner
                    .breakers
                    .record(&vendor, &outcomes, &inner.actor)
                    .await;
                (vendor, outcomes, r)
            })
            .buffer_unordered(inner.settings.concurrency.max(1))
            .collect()
            .await;
        let mut report = FlushReport::default();
        for (vendor, outcomes, result) in results {
            match result {
                Ok(t) => {
                    report.merged += 1;
                    report.transitions += usize::from(t.is_some());
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(vendor, error = %e, "breaker merge failed; keeping the counts");
                    self.put_back(vendor, &outcomes);
                }
            }
        }
        report
    }

    /// Merges every `flush_interval` until `shutdown`, then merges what is
    /// left. Await the handle on shutdown so the last counts are not lost.
    #[must_use]
    pub fn spawn(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let feed = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(feed.inner.settings.flush_interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = ticks.tick() => { feed.flush().await; }
                }
            }
            let report = feed.flush().await;
            tracing::debug!(?report, "breaker feed stopped");
        })
    }

    /// The pending outcomes of `vendor`, created if there is room; None
    /// (and counted as dropped) when `max_vendors` are already held.
    fn slot<'a>(
        &self,
        pending: &'a mut HashMap<String, Outcomes>,
        vendor: String,
    ) -> Option<&'a mut Outcomes> {
        let held = pending.len();
        match pending.entry(vendor) {
            Entry::Occupied(o) => Some(o.into_mut()),
            Entry::Vacant(_) if held >= self.inner.settings.max_vendors => {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
            Entry::Vacant(v) => Some(v.insert(Outcomes::default())),
        }
    }

    fn put_back(&self, vendor: String, outcomes: &Outcomes) {
        let mut pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(mine) = self.slot(&mut pending, vendor) else {
            return;
        };
        mine.successes = mine.successes.saturating_add(outcomes.successes);
        mine.failures = mine.failures.saturating_add(outcomes.failures);
        for s in &outcomes.sources {
            add_source(&mut mine.sources, *s);
        }
    }
}

/// Keeps at most as many distinct sources as a window bucket can hold.
fn add_source(sources: &mut Vec<u64>, id: u64) {
    if sources.len() < MAX_SOURCES_PER_BUCKET && !sources.contains(&id) {
        sources.push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_kept_distinct_and_bounded() {
        let mut s = Vec::new();
        for i in 0..100 {
            add_source(&mut s, i % 40);
            add_source(&mut s, i % 40);
        }
        assert_eq!(s.len(), MAX_SOURCES_PER_BUCKET);
        let mut d = s.clone();
        d.dedup();
        assert_eq!(d.len(), s.len());
    }

    #[test]
    fn only_failures_the_rules_blame_on_the_vendor_count() {
        let mut rule = ErrorRule::builtin_default();
        assert!(!counts_against_vendor(&rule));
        rule.vendor_fault = true;
        assert!(counts_against_vendor(&rule));
    }
}
