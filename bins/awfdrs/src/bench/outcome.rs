//! What one mode measured: the load sent, what was stored, over which
//! window, and the consumer's batches.

use std::time::Duration;

use awfdrs_store::BenchTally;
use chrono::{DateTime, Utc};

use super::Mode;
use super::load::Sent;
use super::machine::CpuUse;
use super::probe::Latencies;

/// What one mode measured.
#[derive(Debug)]
pub struct Outcome {
    pub mode: Mode,
    pub label: String,
    pub sent: Sent,
    /// Events (or bare rows) in the database at the end.
    pub stored: u64,
    pub tally: Option<BenchTally>,
    /// From the first (intended) send to the last commit.
    pub window: Duration,
    pub latencies: Option<Latencies>,
    pub consumer: BatchStats,
    pub cpu: CpuUse,
}

impl Outcome {
    /// Committed events per second over the window.
    pub fn rate(&self) -> f64 {
        self.stored as f64 / self.window.as_secs_f64().max(1e-6)
    }
}

/// The consumer's batches, from its metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchStats {
    pub batches: f64,
    pub messages: f64,
    pub seconds: f64,
}

impl BatchStats {
    pub(super) fn from_metrics(text: &str) -> Self {
        let sum = |name: &str| -> f64 {
            text.lines()
                .filter(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Self {
            batches: sum("awfdrs_batch_seconds_count"),
            messages: sum("awfdrs_batch_size_sum"),
            seconds: sum("awfdrs_batch_seconds_sum"),
        }
    }
}

pub(super) fn window(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}
