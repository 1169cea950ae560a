//! The keys inside the safety layer's KV buckets (the buckets themselves
//! are named in `bus`, with every other name).

use std::fmt;

use awfdrs_rules::is_slug;

use crate::GuardError;

/// The buckets are named with every other name, in `bus`. The breakers'
/// bucket holds one JSON entry per vendor slug; the rate limits' bucket,
/// per [`RateKey`], the theoretical arrival time in nanoseconds since the
/// epoch, as decimal text.
pub use awfdrs_bus::names::{BREAKERS_BUCKET, RATELIMITS_BUCKET};

/// Revisions kept per key: only the latest matters, and compare-and-set
/// needs no history.
pub const HISTORY: i64 = 1;

/// A vendor's breaker key, checked to be a slug (always a valid KV key).
///
/// # Errors
/// [`GuardError::InvalidName`] when it is not a slug.
pub fn breaker_key(vendor: &str) -> Result<&str, GuardError> {
    if is_slug(vendor) {
        Ok(vendor)
    } else {
        Err(GuardError::InvalidName(vendor.to_owned()))
    }
}

/// What a retry rate limit applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// One tenant's retries, over all vendors (`tenant.<slug>`).
    Tenant(String),
    /// Retries towards one vendor, over all tenants (`vendor.<slug>`).
    Vendor(String),
    /// Deliveries to one notification channel (`channel.<id>`).
    Channel(String),
}

impl RateKey {
    /// The scope's name in metrics: `tenant`, `vendor` or `channel`.
    #[must_use]
    pub fn scope(&self) -> &'static str {
        match self {
            Self::Tenant(_) => "tenant",
            Self::Vendor(_) => "vendor",
            Self::Channel(_) => "channel",
        }
    }

    /// The KV key.
    ///
    /// # Errors
    /// [`GuardError::InvalidName`] when the name is not a slug.
    pub fn key(&self) -> Result<String, GuardError> {
        let (Self::Tenant(name) | Self::Vendor(name) | Self::Channel(name)) = self;
        if is_slug(name) {
            Ok(self.to_string())
        } else {
            Err(GuardError::InvalidName(name.clone()))
        }
    }
}

impl fmt::Display for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tenant(t) => write!(f, "tenant.{t}"),
            Self::Vendor(v) => write!(f, "vendor.{v}"),
            Self::Channel(c) => write!(f, "channel.{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_keys_separate_tenants_from_vendors() {
        let t = RateKey::Tenant("acme".into()).key().expect("slug");
        let v = RateKey::Vendor("acme".into()).key().expect("slug");
        assert_eq!(t, "tenant.acme");
        assert_eq!(v, "vendor.acme");
    }

    #[test]
    fn names_that_are_not_slugs_are_refused_before_reaching_kv() {
        assert!(RateKey::Tenant("a.b".into()).key().is_err());
        assert!(breaker_key("Stripe").is_err());
        assert!(breaker_key("").is_err());
        assert_eq!(breaker_key("stripe").ok(), Some("stripe"));
    }
}
