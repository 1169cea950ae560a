//! The safety layer shared by every worker: the pure decisions of
//! `awfdrs-safety` made over state that lives in JetStream KV and Postgres.
//! The two crates are its two halves: `awfdrs-safety` decides (pure, no
//! I/O, `now` a parameter), this crate reads and writes the shared state
//! those decisions need. A worker's safety check (the coordinator's
//! admission of a retry: breaker, hard limit, rate limits) belongs here.
//!
//! It owns the KV buckets `<ns>_breakers` (one JSON [`Breaker`] per vendor)
//! and `<ns>_ratelimits` (one GCRA theoretical arrival time per tenant or
//! vendor), changed only by compare-and-set on the entry's revision, and the
//! audit of breaker transitions and the retry attempts the hard limits count
//! in Postgres (through `awfdrs-store`). [`Breakers`] keeps a local view of
//! every breaker through a KV watch, so a check costs no round trip, and
//! persists the transitions the clock makes (OPEN → HALF_OPEN, a lost
//! probe's HALF_OPEN → OPEN); [`BreakerFeed`] aggregates the detector's
//! observations and merges them a few times a second; [`RateLimits`] and
//! [`HardLimiter`] answer the coordinator's checks before a retry. It sits
//! between the workers and the stores; it decides nothing itself (the
//! `awfdrs-safety` functions do), imports no NATS or SQL client, and never
//! writes a KV entry without compare-and-set. Settings come from the rules
//! (`vendor_config.yaml`); `docs/safety.md` documents them.
//!
//! [`Breaker`]: awfdrs_safety::breaker::Breaker

mod audit;
mod background;
mod breakers;
mod error;
mod feed;
mod limits;
pub mod names;
mod ratelimit;
mod snapshot;
mod view;

use std::time::SystemTime;

pub use awfdrs_safety::Timestamp;
pub use awfdrs_safety::breaker::{
    Admission, BreakerState, Outcomes, ProbeGrant, ProbeResult, Transition,
};
pub use awfdrs_safety::gcra::Decision;
pub use awfdrs_safety::limits::{HardLimit, LimitExceeded, RetryCounts};
pub use breakers::{BreakerOptions, BreakerView, Breakers};
pub use error::GuardError;
pub use feed::{BreakerFeed, FeedSettings, FlushReport, counts_against_vendor};
pub use limits::{HardLimiter, LimitHit, LimitVerdict, config_key};
pub use names::RateKey;
pub use ratelimit::RateLimits;

/// The wall clock as a safety [`Timestamp`].
#[must_use]
pub fn now() -> Timestamp {
    Timestamp::from(SystemTime::now())
}
