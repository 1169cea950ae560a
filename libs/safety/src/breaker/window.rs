//! The sliding failure-rate window: fixed-width time buckets of counts and
//! a small bounded set of hashed failure sources.

use serde::{Deserialize, Serialize};

use crate::hash::stable_hash;
use crate::time::duration_millis;
use crate::{BreakerSettings, Timestamp};

/// Hashed failure sources kept per bucket; more distinct sources than this
/// in one bucket still count as this many.
pub const MAX_SOURCES_PER_BUCKET: usize = 16;

/// Buckets kept at most, whatever the settings say, so a stored breaker
/// stays small.
pub const MAX_BUCKETS: usize = 120;

/// The id under which a failure source (a tenant, or a tenant and workflow)
/// is counted towards `min_distinct_sources`: a stable hash of its name.
#[must_use]
pub fn source_id(source: &str) -> u64 {
    stable_hash(source.as_bytes())
}

/// Outcomes of calls to one vendor, aggregated since the last merge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed through the vendor's fault.
    pub failures: u64,
    /// [`source_id`]s of the sources the failures came from (duplicates are fine).
    pub sources: Vec<u64>,
}

/// Counts of one time bucket of the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket, a multiple of the bucket width since the epoch.
    pub start: Timestamp,
    /// Successful calls.
    pub successes: u64,
    /// Failed calls.
    pub failures: u64,
    /// Distinct failure sources seen, at most [`MAX_SOURCES_PER_BUCKET`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<u64>,
}

/// What the window holds at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Successes plus failures.
    pub calls: u64,
    /// Failures.
    pub failures: u64,
    /// Distinct failure sources (a lower bound once a bucket is full).
    pub distinct_sources: usize,
}

impl WindowStats {
    /// Failures over calls, 0 when there were no calls.
    #[must_use]
    pub fn failure_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let rate = self.failures as f64 / self.calls as f64;
            rate
        }
    }
}

/// Bucket width and window length in milliseconds, never zero.
fn geometry(settings: &BreakerSettings) -> (u64, u64) {
    let bucket = duration_millis(settings.bucket).max(1);
    let window = duration_millis(settings.window).max(bucket);
    (bucket, window)
}

/// Start of the bucket `now` falls in.
fn bucket_start(now: Timestamp, bucket: u64) -> u64 {
    let ms = now.as_unix_millis();
    ms - ms % bucket
}

/// Whether a bucket starting at `start` is inside the window ending in the
/// bucket starting at `current`. Buckets ahead of `current` (another
/// process's clock runs ahead) count while they are within one window.
fn in_window(start: u64, current: u64, window: u64) -> bool {
    start.saturating_add(window) > current && start <= current.saturating_add(window)
}

/// Drops buckets that left the window and bounds the count.
pub(super) fn prune(buckets: &mut Vec<Bucket>, settings: &BreakerSettings, now: Timestamp) {
    let (bucket, window) = geometry(settings);
    let current = bucket_start(now, bucket);
    buckets.retain(|b| in_window(b.start.as_unix_millis(), current, window));
    if buckets.len() > MAX_BUCKETS {
        let excess = buckets.len() - MAX_BUCKETS;
        buckets.drain(..excess);
    }
}

/// Adds `outcomes` to the bucket `now` falls in, keeping buckets sorted.
pub(super) fn merge(
    buckets: &mut Vec<Bucket>,
    settings: &BreakerSettings,
    now: Timestamp,
    outcomes: &Outcomes,
) {
    prune(buckets, settings, now);
    if outcomes.successes == 0 && outcomes.failures == 0 && outcomes.sources.is_empty() {
        return;
    }
    let (width, _) = geometry(settings);
    let start = Timestamp::from_unix_millis(bucket_start(now, width));
    let idx = match buckets.binary_search_by_key(&start, |b| b.start) {
        Ok(i) => i,
        Err(i) => {
            buckets.insert(
                i,
                Bucket {
                    start,
                    successes: 0,
                    failures: 0,
                    sources: Vec::new(),
                },
            );
            i
        }
    };
    let b = &mut buckets[idx];
    b.successes = b.successes.saturating_add(outcomes.successes);
    b.failures = b.failures.saturating_add(outcomes.failures);
    for s in &outcomes.sources {
        if b.sources.len() >= MAX_SOURCES_PER_BUCKET {
            break;
        }
        if !b.sources.contains(s) {
            b.sources.push(*s);
        }
    }
    prune(buckets, settings, now);
}

/// Sums the buckets inside the window at `now`.
pub(super) fn stats(buckets: &[Bucket], settings: &BreakerSettings, now: Timestamp) -> WindowStats {
    let (bucket, window) = geometry(settings);
    let current = bucket_start(now, bucket);
    let mut stats = WindowStats::default();
    let mut sources: Vec<u64> = Vec::new();
    for b in buckets
        .iter()
        .filter(|b| in_window(b.start.as_unix_millis(), current, window))
    {
        stats.failures = stats.failures.saturating_add(b.failures);
        stats.calls = stats
            .calls
            .saturating_add(b.failures)
            .saturating_add(b.successes);
        sources.extend_from_slice(&b.sources);
    }
    sources.sort_unstable();
    sources.dedup();
    stats.distinct_sources = sources.len();
    stats
}
