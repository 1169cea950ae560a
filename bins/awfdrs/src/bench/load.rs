//! The load: events of one size, published over NATS (paced, or as fast as
//! the number of publishes in flight allows) or posted over HTTP by
//! concurrent keep-alive clients.
//!
//! The events are made in `events`, sent in `nats` or `http`; what a run
//! did is a [`Sent`], here.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;

mod events;
mod http;
mod nats;

pub use events::{EventGen, SUCCESS_PERCENT, WORKFLOW_COUNT};
pub use http::{Post, post};
pub use nats::publish;

/// The events a load publishes: event `i`'s workflow (it is in the
/// subject), idempotency key, and JSON body when it happened at `at`.
pub trait Events: Send + Sync {
    fn workflow(&self, i: u64) -> std::borrow::Cow<'_, str>;
    fn key(&self, i: u64) -> String;
    fn body(&self, i: u64, at: DateTime<Utc>) -> String;
}

impl Events for EventGen {
    fn workflow(&self, i: u64) -> std::borrow::Cow<'_, str> {
        EventGen::workflow(self, i).into()
    }
    fn key(&self, i: u64) -> String {
        EventGen::key(self, i)
    }
    fn body(&self, i: u64, at: DateTime<Utc>) -> String {
        EventGen::body(self, i, at)
    }
}

/// What a load run did.
#[derive(Debug)]
pub struct Sent {
    /// Events the pipeline took (publish acked, or HTTP 202).
    pub accepted: u64,
    /// Events refused or lost, by HTTP status (0: no answer, or no publish ack).
    pub refused: BTreeMap<u16, u64>,
    pub first_error: Option<String>,
    /// When the first event was (meant to be) sent.
    pub started: DateTime<Utc>,
    /// How long sending took, first send to last answer.
    pub elapsed: Duration,
    /// Latency of requests (HTTP) in microseconds.
    pub requests: Histogram<u64>,
    /// Sending stopped at the time budget, before all events were sent.
    pub cut_short: bool,
}

impl Sent {
    pub(super) fn new(started: DateTime<Utc>) -> Self {
        Self {
            accepted: 0,
            refused: BTreeMap::new(),
            first_error: None,
            started,
            elapsed: Duration::ZERO,
            requests: histogram(),
            cut_short: false,
        }
    }

    pub(super) fn refuse(&mut self, status: u16, n: u64, error: impl FnOnce() -> String) {
        *self.refused.entry(status).or_default() += n;
        if self.first_error.is_none() {
            self.first_error = Some(error());
        }
    }

    fn merge(&mut self, other: Sent) {
        self.accepted += other.accepted;
        for (status, n) in other.refused {
            *self.refused.entry(status).or_default() += n;
        }
        self.first_error = self.first_error.take().or(other.first_error);
        self.cut_short |= other.cut_short;
        // Both come from histogram() with the same bounds.
        let _ = self.requests.add(other.requests);
    }
}

/// A histogram of microseconds, from 1 µs to an hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}
