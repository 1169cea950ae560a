//! The shapes of the three rules files, as serde reads them.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use awfdrs_safety::{BreakerSettings, HardLimits, RateLimit, RetryPolicy};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

pub use awfdrs_domain::decision::{Category, Severity};

/// Open an incident only after `count` failures within `within`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAfter {
    /// Failures needed.
    pub count: u32,
    /// The window they must fall in.
    #[serde(with = "awfdrs_safety::duration::serde")]
    pub within: Duration,
}

/// What the rules say about one error code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    /// How bad it is.
    pub severity: Severity,
    /// What kind of failure it is.
    pub category: Category,
    /// Whether the vendor is to blame, so it counts towards the vendor's breaker.
    #[serde(default)]
    pub vendor_fault: bool,
    /// The retry policy's name; `None` (written `none`) never retries.
    #[serde(
        default,
        deserialize_with = "policy_name",
        serialize_with = "write_policy_name"
    )]
    pub retry_policy: Option<String>,
    /// What the code means, for people.
    #[serde(default)]
    pub description: String,
    /// Open an incident only after this many failures in a window; by
    /// default the first failure opens one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_after: Option<OpenAfter>,
    /// How this code's retries are remediated; the stricter of this and
    /// the tenant's mode applies. Absent: the tenant's mode alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// How long a notification about an escalated incident of this code
    /// waits before it is sent, when the incident is retryable: one that a
    /// retry or a recovery resolves meanwhile sends nothing. A critical
    /// one goes at once, whatever this says. Absent: at once.
    #[serde(
        default,
        with = "awfdrs_safety::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub notify_after: Option<Duration>,
}

impl ErrorRule {
    /// The rule for codes `error_codes.yaml` does not name, when it has no
    /// `default:` entry: not retried, so a person looks at it.
    #[must_use]
    pub fn builtin_default() -> Self {
        Self {
            severity: Severity::Medium,
            category: Category::Permanent,
            vendor_fault: false,
            retry_policy: None,
            description: "unknown error code: not retried until a rule says it is safe".to_owned(),
            open_after: None,
            mode: None,
            notify_after: None,
        }
    }
}

/// How a retry is remediated, from the least strict to the strictest:
/// `auto` acts; `approve` waits for an operator's approval; `shadow`
/// records the would-be action and sends nothing; `off` records the
/// decision only.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Act.
    #[default]
    Auto,
    /// Retries wait for an operator's approval.
    Approve,
    /// Would-be actions are recorded, marked as such; nothing is sent.
    Shadow,
    /// Decisions only.
    Off,
}

impl Mode {
    /// Every mode, least strict first.
    pub const ALL: [Mode; 4] = [Mode::Auto, Mode::Approve, Mode::Shadow, Mode::Off];

    /// The mode's name as written in rules, the API and the database.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Approve => "approve",
            Mode::Shadow => "shadow",
            Mode::Off => "off",
        }
    }

    /// The stricter of `self` and `other` (`off` > `shadow` > `approve` > `auto`).
    #[must_use]
    pub fn stricter(self, other: Mode) -> Mode {
        self.max(other)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| "must be auto, approve, shadow or off".to_owned())
    }
}

/// The name that stands for "never retry".
pub const NO_RETRY: &str = "none";

fn policy_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let name = String::deserialize(d)?;
    Ok((name != NO_RETRY).then_some(name))
}

fn write_policy_name<S: serde::Serializer>(name: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(name.as_deref().unwrap_or(NO_RETRY))
}

/// A map that rejects a key written twice instead of keeping the last one.
#[derive(Debug)]
pub(crate) struct UniqueMap<V>(pub BTreeMap<String, V>);

impl<V> Default for UniqueMap<V> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = UniqueMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    let value = map.next_value()?;
                    out.insert(key, value);
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

/// How long a notification about an escalated, retryable incident waits
/// by severity (`error_codes.yaml` `notify_after`), when its code's rule
/// sets none. There is no `critical`: a critical one goes at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyAfter {
    #[serde(
        default,
        with = "awfdrs_safety::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub low: Option<Duration>,
    #[serde(
        default,
        with = "awfdrs_safety::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub medium: Option<Duration>,
    #[serde(
        default,
        with = "awfdrs_safety::duration::serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub high: Option<Duration>,
}

impl NotifyAfter {
    /// The wait for `severity`; `None` for critical.
    #[must_use]
    pub fn for_severity(&self, severity: Severity) -> Option<Duration> {
        match severity {
            Severity::Low => self.low,
            Severity::Medium => self.medium,
            Severity::High => self.high,
            Severity::Critical => None,
        }
    }
}

/// `error_codes.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorCodesFile {
    /// Retries of this severity or above wait for approval in `approve`
    /// mode; below it they go ahead as in `auto`.
    #[serde(default)]
    pub approve_min_severity: Option<Severity>,
    /// How long a notification about a retryable incident waits, by
    /// severity, when its code's rule does not say.
    #[serde(default)]
    pub notify_after: NotifyAfter,
    #[serde(default)]
    pub default: Option<ErrorRule>,
    #[serde(default)]
    pub codes: UniqueMap<ErrorRule>,
}

/// `retry_policies.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryPoliciesFile {
    #[serde(default)]
    pub policies: UniqueMap<RetryPolicy>,
}

/// `vendor_config.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VendorConfigFile {
    #[serde(default)]
    pub defaults: VendorDefaults,
    #[serde(default)]
    pub tenant_rate_limit: RateLimit,
    #[serde(default)]
    pub hard_limits: HardLimits,
    #[serde(default)]
    pub vendors: UniqueMap<VendorOverrides>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VendorDefaults {
    #[serde(default)]
    pub breaker: BreakerSettings,
    #[serde(default)]
    pub rate_limit: RateLimit,
}

/// One vendor's entry: only the fields it changes from `defaults`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VendorOverrides {
    #[serde(default)]
    pub breaker: BreakerOverrides,
    #[serde(default)]
    pub rate_limit: RateLimitOverrides,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BreakerOverrides {
    #[serde(default)]
    pub failure_rate_threshold: Option<f64>,
    #[serde(default, with = "awfdrs_safety::duration::serde_opt")]
    pub window: Option<Duration>,
    #[serde(default, with = "awfdrs_safety::duration::serde_opt")]
    pub bucket: Option<Duration>,
    #[serde(default)]
    pub minimum_calls: Option<u32>,
    #[serde(default, with = "awfdrs_safety::duration::serde_opt")]
    pub open_duration: Option<Duration>,
    #[serde(default)]
    pub half_open_probes: Option<u32>,
    #[serde(default, with = "awfdrs_safety::duration::serde_opt")]
    pub probe_timeout: Option<Duration>,
    #[serde(default)]
    pub successes_to_close: Option<u32>,
    #[serde(default)]
    pub min_distinct_sources: Option<u32>,
}

impl BreakerOverrides {
    pub(crate) fn apply(&self, base: BreakerSettings) -> BreakerSettings {
        BreakerSettings {
            failure_rate_threshold: self
                .failure_rate_threshold
                .unwrap_or(base.failure_rate_threshold),
            window: self.window.unwrap_or(base.window),
            bucket: self.bucket.unwrap_or(base.bucket),
            minimum_calls: self.minimum_calls.unwrap_or(base.minimum_calls),
            open_duration: self.open_duration.unwrap_or(base.open_duration),
            half_open_probes: self.half_open_probes.unwrap_or(base.half_open_probes),
            probe_timeout: self.probe_timeout.unwrap_or(base.probe_timeout),
            successes_to_close: self.successes_to_close.unwrap_or(base.successes_to_close),
            min_distinct_sources: self
                .min_distinct_sources
                .unwrap_or(base.min_distinct_sources),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitOverrides {
    #[serde(default)]
    pub retries_per_second: Option<f64>,
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimitOverrides {
    pub(crate) fn apply(&self, base: RateLimit) -> RateLimit {
        RateLimit {
            retries_per_second: self.retries_per_second.unwrap_or(base.retries_per_second),
            burst: self.burst.unwrap_or(base.burst),
        }
    }
}
