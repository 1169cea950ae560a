//! The rules engine's configuration: what each error code means, how each
//! kind of failure is retried, and how cautious to be with each vendor.
//!
//! This crate owns the YAML files under `config/rules/`
//! (`error_codes.yaml`, `retry_policies.yaml`, `vendor_config.yaml`; every
//! key is documented in `docs/rules.md`): it parses them strictly
//! (unknown keys are errors), validates them all at once with the file, key
//! path and reason of every problem, and serves lookups from an immutable
//! [`Rules`] value. [`RulesHandle`] swaps in new rules on reload (file
//! change or SIGHUP) and keeps the last good ones when a reload is invalid.
//! The decisions that use these settings (breakers, rate limits, retry
//! delays) live in `awfdrs-safety`, whose plain settings types this crate
//! fills. It must not talk to NATS or Postgres, nor decide anything itself.

mod error;
mod handle;
mod load;
mod schema;
mod validate;

use std::collections::BTreeMap;
use std::time::Duration;

use awfdrs_safety::{BreakerSettings, HardLimits, RateLimit, RetryPolicy};

/// Error codes are looked up in the normalised form that failure signatures
/// use; the one definition lives in `awfdrs-domain`.
pub use awfdrs_domain::{is_slug, normalize_code};
pub use error::{RulesError, RulesErrors};
pub use handle::{DEBOUNCE, RulesHandle, WatchError, spawn_watcher};
pub use load::RuleSources;
pub use schema::{Category, ErrorRule, Mode, NO_RETRY, NotifyAfter, OpenAfter, Severity};

/// File name of the error-code rules.
pub const ERROR_CODES_FILE: &str = "error_codes.yaml";
/// File name of the retry policies.
pub const RETRY_POLICIES_FILE: &str = "retry_policies.yaml";
/// File name of the vendor safety settings.
pub const VENDOR_CONFIG_FILE: &str = "vendor_config.yaml";
/// Where the rules live unless configured otherwise.
pub const DEFAULT_RULES_DIR: &str = "config/rules";

/// One vendor's safety settings, its overrides merged over the defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VendorSettings {
    /// Circuit breaker settings.
    pub breaker: BreakerSettings,
    /// Retry rate limit towards this vendor, over all tenants.
    pub rate_limit: RateLimit,
}

/// A validated, immutable set of rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    codes: BTreeMap<String, ErrorRule>,
    default_code: ErrorRule,
    policies: BTreeMap<String, RetryPolicy>,
    vendor_defaults: VendorSettings,
    vendors: BTreeMap<String, VendorSettings>,
    tenant_rate_limit: RateLimit,
    hard_limits: HardLimits,
    approve_min_severity: Severity,
    notify_after: NotifyAfter,
}

impl Rules {
    /// The rule for `code` (normalised with [`normalize_code`] first), or the
    /// `default` rule when no code matches.
    #[must_use]
    pub fn error_code(&self, code: &str) -> &ErrorRule {
        self.known_error_code(code).unwrap_or(&self.default_code)
    }

    /// The rule for `code` if the rules name it, without falling back.
    #[must_use]
    pub fn known_error_code(&self, code: &str) -> Option<&ErrorRule> {
        self.codes.get(&normalize_code(code))
    }

    /// The rule applied to codes the rules do not name.
    #[must_use]
    pub fn default_error_rule(&self) -> &ErrorRule {
        &self.default_code
    }

    /// Every named code and its rule, in name order.
    pub fn error_codes(&self) -> impl Iterator<Item = (&str, &ErrorRule)> {
        self.codes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The retry policy called `name`.
    #[must_use]
    pub fn retry_policy(&self, name: &str) -> Option<&RetryPolicy> {
        self.policies.get(name)
    }

    /// The retry policy for `code` with its name, or `None` when the code is
    /// not to be retried.
    #[must_use]
    pub fn retry_policy_for(&self, code: &str) -> Option<(&str, &RetryPolicy)> {
        let name = self.error_code(code).retry_policy.as_deref()?;
        // Validation guarantees every referenced policy exists.
        self.policies
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Every retry policy, in name order.
    pub fn retry_policies(&self) -> impl Iterator<Item = (&str, &RetryPolicy)> {
        self.policies.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The settings for `vendor`: its entry merged over the defaults, or the
    /// defaults for a vendor not listed.
    #[must_use]
    pub fn vendor(&self, vendor: &str) -> VendorSettings {
        self.vendors
            .get(vendor)
            .copied()
            .unwrap_or(self.vendor_defaults)
    }

    /// The settings a vendor gets when it is not listed.
    #[must_use]
    pub fn vendor_defaults(&self) -> VendorSettings {
        self.vendor_defaults
    }

    /// Every listed vendor with its merged settings, in name order.
    pub fn vendors(&self) -> impl Iterator<Item = (&str, VendorSettings)> {
        self.vendors.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// The retry rate limit each tenant gets.
    #[must_use]
    pub fn tenant_rate_limit(&self) -> RateLimit {
        self.tenant_rate_limit
    }

    /// The hard retry limits.
    #[must_use]
    pub fn hard_limits(&self) -> HardLimits {
        self.hard_limits
    }

    /// The mode the rules set for `code` (its rule's, or the `default`
    /// rule's), if any.
    #[must_use]
    pub fn mode_for(&self, code: &str) -> Option<Mode> {
        self.error_code(code).mode
    }

    /// The lowest severity whose retries wait for approval in `approve`
    /// mode (`error_codes.yaml` `approve_min_severity`, default `low`).
    #[must_use]
    pub fn approve_min_severity(&self) -> Severity {
        self.approve_min_severity
    }

    /// How long a notification about an escalated, retryable incident of
    /// `code` and `severity` waits before it is sent: the code's
    /// `notify_after`, else the one for its severity. A critical one, and
    /// a zero wait, go at once (`None`).
    #[must_use]
    pub fn notify_after(&self, code: &str, severity: Severity) -> Option<Duration> {
        if severity == Severity::Critical {
            return None;
        }
        self.error_code(code)
            .notify_after
            .or_else(|| self.notify_after.for_severity(severity))
            .filter(|d| !d.is_zero())
    }
}
