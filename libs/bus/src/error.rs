//! Bus errors.

/// An error talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker could not be reached or did not ack in time.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// A stream, consumer or bucket could not be declared.
    #[error("topology: {0}")]
    Topology(String),
    /// A KV operation failed.
    #[error("kv: {0}")]
    Kv(String),
    /// A header could not be written.
    #[error("header: {0}")]
    Header(String),
    /// A compare-and-set lost to a concurrent writer too many times.
    #[error("kv: gave up after {0} conflicting updates")]
    Contention(u32),
}

impl BusError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Kv(_) | Self::Contention(_)
        )
    }
}
