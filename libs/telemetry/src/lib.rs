//! Telemetry of every AWFDRS process: the tracing subscriber (JSON or
//! pretty, filtered by `RUST_LOG`), the Prometheus metrics registry, and
//! the [`Health`] of a process's tasks that `/ready` reports.
//!
//! Libraries only emit `tracing` events and update the [`Metrics`] handed to
//! them; only binaries call [`init_logging`]. Metric names are defined here
//! and nowhere else.

mod health;
mod metrics;

pub use health::{Health, TaskHealth, TaskState};

pub use metrics::{
    ActionLabels, BreakerTransitionLabels, BucketLabels, ConsumerLabels, ConsumerOutcomeLabels,
    HardLimitLabels, HttpLabels, KvWatchOpen, Metrics, NotificationLabels, OutcomeLabels,
    PrunedLabels, RateLimitLabels, RejectLabels, SourceLabels, VendorLabels,
};

use awfdrs_config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber. Call once, from a binary.
/// `RUST_LOG` filters (default `info`); `format` picks JSON or pretty lines.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second install (tests running several workers) is not an error.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
