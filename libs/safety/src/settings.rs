//! Plain settings types read by the safety functions, deserialisable from
//! the rules files, each with a `problems()` check of its own ranges.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::{MAX_BUCKETS, MAX_SOURCES_PER_BUCKET};
use crate::duration::format_duration;

/// One invalid field of a settings value: the field name and why.
///
/// The rules loader prefixes the key path and file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field the problem is reported on (for cross-field problems, the
    /// one to change).
    pub field: &'static str,
    /// Why the value is rejected, in plain words.
    pub reason: String,
}

fn problem(field: &'static str, reason: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field,
        reason: reason.into(),
    }
}

fn require_non_zero(out: &mut Vec<FieldProblem>, field: &'static str, d: Duration) {
    if d.is_zero() {
        out.push(problem(field, "must be greater than zero"));
    }
}

/// Circuit breaker settings for one vendor. Every field has a default, see
/// `docs/rules.md`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Failure rate (failures / calls, in `(0, 1]`) at or above which the breaker opens.
    pub failure_rate_threshold: f64,
    /// Length of the sliding window the failure rate is measured over.
    #[serde(with = "crate::duration::serde")]
    pub window: Duration,
    /// Width of one bucket of the window; `window` must be a multiple of it.
    #[serde(with = "crate::duration::serde")]
    pub bucket: Duration,
    /// Calls (successes + failures) needed in the window before the rate counts.
    pub minimum_calls: u32,
    /// How long the breaker stays open before admitting probes.
    #[serde(with = "crate::duration::serde")]
    pub open_duration: Duration,
    /// Probes admitted at once while half-open.
    pub half_open_probes: u32,
    /// How long a probe may stay unreported before it counts as failed.
    #[serde(with = "crate::duration::serde")]
    pub probe_timeout: Duration,
    /// Probe successes that close a half-open breaker.
    pub successes_to_close: u32,
    /// Distinct failure sources (tenants or workflows) needed in the window
    /// before the breaker opens, so one noisy tenant cannot open it for all.
    pub min_distinct_sources: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_rate_threshold: 0.5,
            window: Duration::from_secs(60),
            bucket: Duration::from_secs(6),
            minimum_calls: 20,
            open_duration: Duration::from_secs(30),
            half_open_probes: 2,
            probe_timeout: Duration::from_secs(60),
            successes_to_close: 2,
            min_distinct_sources: 2,
        }
    }
}

impl BreakerSettings {
    /// Every field whose value the breaker cannot work with.
    #[must_use]
    pub fn problems(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        let t = self.failure_rate_threshold;
        if !(t > 0.0 && t <= 1.0) {
            out.push(problem(
                "failure_rate_threshold",
                format!("must be greater than 0 and at most 1, got {t}"),
            ));
        }
        require_non_zero(&mut out, "window", self.window);
        require_non_zero(&mut out, "bucket", self.bucket);
        require_non_zero(&mut out, "open_duration", self.open_duration);
        require_non_zero(&mut out, "probe_timeout", self.probe_timeout);
        if !self.window.is_zero() && !self.bucket.is_zero() {
            let (w, b) = (self.window.as_millis(), self.bucket.as_millis());
            if b == 0 || w % b != 0 {
                out.push(problem(
                    "bucket",
                    format!(
                        "window {} is not a whole number of buckets of {}",
                        format_duration(self.window),
                        format_duration(self.bucket)
                    ),
                ));
            } else if w / b > MAX_BUCKETS as u128 {
                out.push(problem(
                    "bucket",
                    format!(
                        "window {} holds {} buckets of {}; at most {MAX_BUCKETS} are kept",
                        format_duration(self.window),
                        w / b,
                        format_duration(self.bucket)
                    ),
                ));
            }
        }
        for (field, v) in [
            ("minimum_calls", self.minimum_calls),
            ("half_open_probes", self.half_open_probes),
            ("successes_to_close", self.successes_to_close),
        ] {
            if v == 0 {
                out.push(problem(field, "must be at least 1"));
            }
        }
        if self.min_distinct_sources as usize > MAX_SOURCES_PER_BUCKET {
            out.push(problem(
                "min_distinct_sources",
                format!(
                    "must be at most {MAX_SOURCES_PER_BUCKET} (sources tracked per bucket), got {}",
                    self.min_distinct_sources
                ),
            ));
        }
        out
    }
}

/// A GCRA rate limit: a sustained rate and how many may go at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained retries per second (may be fractional: `0.5` is one every two seconds).
    pub retries_per_second: f64,
    /// Retries that may go back to back after a quiet period.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            retries_per_second: 5.0,
            burst: 10,
        }
    }
}

impl RateLimit {
    /// Every field whose value the limiter cannot work with.
    #[must_use]
    pub fn problems(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        let r = self.retries_per_second;
        if !(r.is_finite() && r > 0.0 && r <= 1_000_000.0) {
            out.push(problem(
                "retries_per_second",
                format!("must be greater than 0 and at most 1000000, got {r}"),
            ));
        }
        if self.burst == 0 {
            out.push(problem("burst", "must be at least 1"));
        }
        out
    }
}

/// Hard caps on retries; a retry over any of them becomes an escalation.
///
/// A cap of 0 disables retries for that scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HardLimits {
    /// Retries of one workflow run, over all its incidents.
    pub max_retries_per_run: u32,
    /// Retries made for one incident.
    pub max_retries_per_incident: u32,
    /// Retries sent to one vendor in the last hour, over all tenants.
    pub max_retries_per_vendor_per_hour: u32,
}

impl Default for HardLimits {
    fn default() -> Self {
        Self {
            max_retries_per_run: 5,
            max_retries_per_incident: 20,
            max_retries_per_vendor_per_hour: 1_000,
        }
    }
}

/// How a retry policy's delay grows with the attempt number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackoffKind {
    /// `initial_delay × multiplier^(attempt − 1)`.
    Exponential,
    /// `initial_delay + increment × (attempt − 1)`.
    Linear,
    /// `initial_delay` every time.
    Fixed,
}

/// A named retry policy from `retry_policies.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// How the delay grows.
    pub kind: BackoffKind,
    /// Delay before the first retry.
    #[serde(with = "crate::duration::serde")]
    pub initial_delay: Duration,
    /// Growth factor (exponential only; default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    /// Added per attempt (linear only; default `initial_delay`).
    #[serde(
        default,
        with = "crate::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub increment: Option<Duration>,
    /// Cap on any single delay.
    #[serde(with = "crate::duration::serde")]
    pub max_delay: Duration,
    /// Retries allowed in total; attempt numbers run from 1 to this.
    pub max_attempts: u32,
    /// Cap on the time from the first failure to the last retry; none by default.
    #[serde(
        default,
        with = "crate::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_elapsed: Option<Duration>,
    /// Whether delays get full jitter (default true).
    #[serde(default = "default_jitter")]
    pub jitter: bool,
}

fn default_jitter() -> bool {
    true
}

impl RetryPolicy {
    /// Default growth factor of an exponential policy.
    pub const DEFAULT_MULTIPLIER: f64 = 2.0;

    /// The growth factor in force (exponential policies).
    #[must_use]
    pub fn multiplier(&self) -> f64 {
        self.multiplier.unwrap_or(Self::DEFAULT_MULTIPLIER)
    }

    /// The per-attempt increment in force (linear policies).
    #[must_use]
    pub fn increment(&self) -> Duration {
        self.increment.unwrap_or(self.initial_delay)
    }

    /// Every field whose value makes the policy unusable or contradictory.
    #[must_use]
    pub fn problems(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        require_non_zero(&mut out, "initial_delay", self.initial_delay);
        require_non_zero(&mut out, "max_delay", self.max_delay);
        if self.max_delay < self.initial_delay {
            out.push(problem(
                "max_delay",
                format!(
                    "{} is shorter than initial_delay {}",
                    format_duration(self.max_delay),
                    format_duration(self.initial_delay)
                ),
            ));
        }
        if self.max_attempts == 0 {
            out.push(problem(
                "max_attempts",
                "must be at least 1 (use retry_policy: none to never retry)",
            ));
        }
        match (self.kind, self.multiplier) {
            (BackoffKind::Exponential, Some(m))
                if !(m.is_finite() && (1.0..=100.0).contains(&m)) =>
            {
                out.push(problem(
                    "multiplier",
                    format!("must be between 1 and 100, got {m}"),
                ));
            }
            (BackoffKind::Linear | BackoffKind::Fixed, Some(_)) => {
                out.push(problem("multiplier", "only applies to kind exponential"));
            }
            _ => {}
        }
        match (self.kind, self.increment) {
            (BackoffKind::Linear, Some(d)) => require_non_zero(&mut out, "increment", d),
            (BackoffKind::Exponential | BackoffKind::Fixed, Some(_)) => {
                out.push(problem("increment", "only applies to kind linear"));
            }
            _ => {}
        }
        if let Some(e) = self.max_elapsed {
            if e.is_zero() {
                out.push(problem(
                    "max_elapsed",
                    "must be greater than zero (omit it for no bound)",
                ));
            } else if e < self.initial_delay {
                out.push(problem(
                    "max_elapsed",
                    format!(
                        "{} is shorter than initial_delay {}",
                        format_duration(e),
                        format_duration(self.initial_delay)
                    ),
                ));
            }
        }
        out
    }
}
