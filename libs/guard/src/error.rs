//! The guard's errors, classified by what the caller should do about them.

use awfdrs_bus::BusError;
use awfdrs_store::StoreError;

/// Why a safety operation could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The vendor or tenant name cannot be a KV key (it must be a slug).
    #[error("invalid name {0:?}: must match [a-z0-9][a-z0-9_-]{{0,62}}")]
    InvalidName(String),
    /// The stored breaker cannot be read; an operator's reset or force-open
    /// overwrites it.
    #[error("stored breaker of {vendor} is unreadable")]
    Corrupt {
        /// The vendor.
        vendor: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// JetStream KV failed or stayed contended.
    #[error("shared safety state unavailable")]
    Bus(#[from] BusError),
    /// Postgres failed.
    #[error("safety records unavailable")]
    Store(#[from] awfdrs_store::StoreError),
}

impl GuardError {
    /// Whether trying again later may succeed.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Bus(e) => e.is_transient(),
            Self::Store(e) => StoreError::is_transient(e),
            Self::InvalidName(_) | Self::Corrupt { .. } => false,
        }
    }
}
