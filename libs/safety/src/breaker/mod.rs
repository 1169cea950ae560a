//! The per-vendor circuit breaker, as a serialisable value and pure
//! transition functions.
//!
//! The value ([`Breaker`]) lives in a JetStream KV entry; a worker reads it,
//! calls one function here with the vendor's [`BreakerSettings`] and the
//! current time, and writes the result back with compare-and-set, retrying
//! on a lost race. Each function returns the new value and the
//! [`Transition`] it caused, if any, for the audit trail.
//!
//! * `CLOSED → OPEN` in [`record`]: the failure rate over the sliding window
//!   reaches `failure_rate_threshold` with at least `minimum_calls` calls
//!   and failures from at least `min_distinct_sources` sources.
//! * `OPEN → HALF_OPEN` by time alone once `open_duration` has passed; every
//!   function applies [`tick`] first, so any reader moves it along.
//! * `HALF_OPEN` admits `half_open_probes` probes at once
//!   ([`try_acquire_probe`]). `successes_to_close` probe successes close the
//!   breaker and clear the window; a probe failure, or a probe that does not
//!   report within `probe_timeout`, reopens it, so half-open never waits for
//!   ever on a lost probe. A half-open breaker no one probes stays half-open:
//!   there is nothing to learn until a retry wants to go.
//! * Operators: [`force_open`] holds it open until [`reset`], which closes it
//!   and clears the window.
//!
//! Outcomes are merged in aggregate ([`record`]) a few times a second, not
//! per event. They keep filling the window while open, so the failure rate
//! stays visible, but only probes move a half-open breaker.

mod ops;
mod window;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use ops::{check, force_open, record, report_probe, reset, tick, try_acquire_probe};
pub use window::{Bucket, MAX_BUCKETS, MAX_SOURCES_PER_BUCKET, Outcomes, WindowStats, source_id};

use crate::duration::format_duration;
use crate::{BreakerSettings, Timestamp};

/// The three breaker states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerState {
    /// Retries flow.
    Closed,
    /// Retries are held.
    Open,
    /// A few probe retries may go to test the vendor.
    HalfOpen,
}

impl BreakerState {
    /// `"CLOSED"`, `"OPEN"` or `"HALF_OPEN"`, as in the API.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "CLOSED",
            Self::Open => "OPEN",
            Self::HalfOpen => "HALF_OPEN",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BreakerState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "CLOSED" => Ok(Self::Closed),
            "OPEN" => Ok(Self::Open),
            "HALF_OPEN" => Ok(Self::HalfOpen),
            other => Err(format!(
                "unknown breaker state {other:?}: expected CLOSED, OPEN or HALF_OPEN"
            )),
        }
    }
}

/// A probe slot taken while half-open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// Who holds it (for example the retry action's id).
    pub holder: String,
    /// When it was granted.
    pub granted_at: Timestamp,
    /// When it counts as failed if it has not reported.
    pub expires_at: Timestamp,
}

/// Permission to send one probe retry; report its outcome with [`report_probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeGrant {
    /// The holder the slot was granted to.
    pub holder: String,
    /// Report before this instant, or the probe counts as failed.
    pub expires_at: Timestamp,
}

/// How a probe retry went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    /// The vendor answered well.
    Success,
    /// The vendor failed again.
    Failure,
}

/// A change of state, for the audit trail and the breaker's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
    /// When it happened.
    pub at: Timestamp,
    /// Why, in words an operator can read.
    pub reason: String,
}

/// What a caller may do right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: send the retry.
    Allow,
    /// Half-open with a free slot: try to take a probe with [`try_acquire_probe`].
    Probe,
    /// Hold the retry; look again at `until` (`None`: until an operator resets it).
    Deny {
        /// When the answer may change.
        until: Option<Timestamp>,
    },
}

/// One vendor's circuit breaker: the value stored in the KV entry.
///
/// Fields are private so that only the functions of this module, which
/// keep its invariants, change it; read them through the accessors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breaker {
    state: BreakerState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    opened_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_until: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    half_opened_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    forced_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    probes: Vec<Probe>,
    #[serde(default)]
    probe_successes: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    buckets: Vec<Bucket>,
    updated_at: Timestamp,
}

impl Breaker {
    /// A closed breaker with an empty window.
    #[must_use]
    pub fn new(now: Timestamp) -> Self {
        Self {
            state: BreakerState::Closed,
            opened_at: None,
            open_until: None,
            half_opened_at: None,
            forced_reason: None,
            probes: Vec::new(),
            probe_successes: 0,
            buckets: Vec::new(),
            updated_at: now,
        }
    }

    /// The stored state (call [`tick`] for the state at a later instant).
    #[must_use]
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// When it last opened, while open or half-open.
    #[must_use]
    pub fn opened_at(&self) -> Option<Timestamp> {
        self.opened_at
    }

    /// When an open breaker half-opens; `None` when closed, half-open or forced open.
    #[must_use]
    pub fn open_until(&self) -> Option<Timestamp> {
        self.open_until
    }

    /// When it went half-open, while half-open.
    #[must_use]
    pub fn half_opened_at(&self) -> Option<Timestamp> {
        self.half_opened_at
    }

    /// The operator's reason, while forced open.
    #[must_use]
    pub fn forced_reason(&self) -> Option<&str> {
        self.forced_reason.as_deref()
    }

    /// Probes in flight, while half-open.
    #[must_use]
    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }

    /// Probe successes so far in this half-open period.
    #[must_use]
    pub fn probe_successes(&self) -> u32 {
        self.probe_successes
    }

    /// The window's buckets, oldest first.
    #[must_use]
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// When a function last changed it.
    #[must_use]
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    /// Calls, failures and distinct sources in the window at `now`.
    #[must_use]
    pub fn window_stats(&self, now: Timestamp, settings: &BreakerSettings) -> WindowStats {
        window::stats(&self.buckets, settings, now)
    }

    /// Failures over calls in the window at `now` (0 with no calls).
    #[must_use]
    pub fn failure_rate(&self, now: Timestamp, settings: &BreakerSettings) -> f64 {
        self.window_stats(now, settings).failure_rate()
    }

    /// Checks the invariants every function keeps; use it on a value read
    /// from storage before trusting it.
    ///
    /// # Errors
    /// Names the first invariant that does not hold.
    pub fn check_invariants(&self, settings: &BreakerSettings) -> Result<(), &'static str> {
        let starts_increase = self.buckets.windows(2).all(|w| w[0].start < w[1].start);
        let sources_bounded = self.buckets.iter().all(|b| {
            let mut s = b.sources.clone();
            s.sort_unstable();
            s.dedup();
            b.sources.len() <= MAX_SOURCES_PER_BUCKET && s.len() == b.sources.len()
        });
        let mut holders: Vec<&str> = self.probes.iter().map(|p| p.holder.as_str()).collect();
        holders.sort_unstable();
        holders.dedup();
        let check = |ok: bool, why| if ok { Ok(()) } else { Err(why) };
        check(starts_increase, "buckets are not in increasing order")?;
        check(
            self.buckets.len() <= MAX_BUCKETS,
            "more buckets than allowed",
        )?;
        check(
            sources_bounded,
            "a bucket holds too many or duplicate sources",
        )?;
        check(
            holders.len() == self.probes.len(),
            "one holder holds two probes",
        )?;
        match self.state {
            BreakerState::Closed => {
                check(self.opened_at.is_none(), "closed with opened_at")?;
                check(self.open_until.is_none(), "closed with open_until")?;
                check(self.half_opened_at.is_none(), "closed with half_opened_at")?;
                check(self.forced_reason.is_none(), "closed but forced open")?;
                check(self.probes.is_empty(), "probes in flight while closed")?;
                check(self.probe_successes == 0, "probe successes while closed")
            }
            BreakerState::Open => {
                check(self.opened_at.is_some(), "open without opened_at")?;
                check(
                    self.open_until.is_some() != self.forced_reason.is_some(),
                    "open needs exactly one of open_until and a forced reason",
                )?;
                check(self.half_opened_at.is_none(), "open with half_opened_at")?;
                check(self.probes.is_empty(), "probes in flight while open")?;
                check(self.probe_successes == 0, "probe successes while open")
            }
            BreakerState::HalfOpen => {
                check(self.opened_at.is_some(), "half-open without opened_at")?;
                check(
                    self.half_opened_at.is_some(),
                    "half-open without half_opened_at",
                )?;
                check(self.open_until.is_none(), "half-open with open_until")?;
                check(self.forced_reason.is_none(), "half-open but forced open")?;
                check(
                    self.probes.len() <= settings.half_open_probes as usize,
                    "more probes in flight than allowed",
                )?;
                check(
                    self.probe_successes < settings.successes_to_close,
                    "half-open with enough successes to close",
                )
            }
        }
    }

    fn transition(&mut self, to: BreakerState, now: Timestamp, reason: String) -> Transition {
        let from = self.state;
        self.state = to;
        self.updated_at = now;
        Transition {
            from,
            to,
            at: now,
            reason,
        }
    }

    fn open(&mut self, settings: &BreakerSettings, now: Timestamp, reason: String) -> Transition {
        self.opened_at = Some(now);
        self.open_until = Some(now.saturating_add(settings.open_duration));
        self.half_opened_at = None;
        self.forced_reason = None;
        self.probes.clear();
        self.probe_successes = 0;
        self.transition(BreakerState::Open, now, reason)
    }

    fn close(&mut self, now: Timestamp, reason: String) -> Transition {
        self.opened_at = None;
        self.open_until = None;
        self.half_opened_at = None;
        self.forced_reason = None;
        self.probes.clear();
        self.probe_successes = 0;
        // The outage's failures must not reopen a breaker that probes closed.
        self.buckets.clear();
        self.transition(BreakerState::Closed, now, reason)
    }

    /// Moves the value to `now`: half-opens after `open_duration`, reopens
    /// when a probe missed its deadline. At most one transition.
    fn advance(&mut self, settings: &BreakerSettings, now: Timestamp) -> Option<Transition> {
        match self.state {
            BreakerState::Closed => None,
            BreakerState::Open => {
                let until = self.open_until.filter(|u| now >= *u)?;
                let opened = self.opened_at.unwrap_or(until);
                self.open_until = None;
                self.half_opened_at = Some(now);
                let reason = format!(
                    "open for {}, admitting up to {} probes",
                    format_duration(until.saturating_duration_since(opened)),
                    settings.half_open_probes
                );
                Some(self.transition(BreakerState::HalfOpen, now, reason))
            }
            BreakerState::HalfOpen => {
                let late = self
                    .probes
                    .iter()
                    .filter(|p| p.expires_at <= now)
                    .min_by_key(|p| p.expires_at)?;
                let reason = format!(
                    "probe by {} did not report within {}",
                    late.holder,
                    format_duration(late.expires_at.saturating_duration_since(late.granted_at))
                );
                Some(self.open(settings, now, reason))
            }
        }
    }
}
