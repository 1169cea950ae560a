//! Wall-clock instants as plain, serialisable data.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A wall-clock instant: whole milliseconds since the Unix epoch.
///
/// Serialises as a bare integer so it fits in KV entries and compares across
/// processes. Arithmetic saturates instead of panicking: a skewed clock must
/// never crash a safety decision.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Self = Self(0);

    /// The instant `millis` milliseconds after the Unix epoch.
    #[must_use]
    pub const fn from_unix_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    #[must_use]
    pub const fn as_unix_millis(self) -> u64 {
        self.0
    }

    /// Nanoseconds since the Unix epoch (saturating; fine until the year 2554).
    #[must_use]
    pub const fn as_unix_nanos(self) -> u64 {
        self.0.saturating_mul(1_000_000)
    }

    /// `self + d`, saturating at the end of time; sub-millisecond parts of `d` are dropped.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(d)))
    }

    /// `self - d`, saturating at the epoch; sub-millisecond parts of `d` are dropped.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(d)))
    }

    /// How long after `earlier` this instant is, or zero if it is not after it.
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl From<SystemTime> for Timestamp {
    /// Converts a system time; instants before the epoch become the epoch.
    fn from(t: SystemTime) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Self(duration_millis(since))
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        UNIX_EPOCH + Duration::from_millis(t.0)
    }
}

/// Whole milliseconds in `d`, saturating at `u64::MAX`.
pub(crate) fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_arithmetic_saturates_instead_of_overflowing() {
        let end = Timestamp::from_unix_millis(u64::MAX);
        assert_eq!(end.saturating_add(Duration::from_secs(1)), end);
        assert_eq!(
            Timestamp::UNIX_EPOCH.saturating_sub(Duration::from_secs(1)),
            Timestamp::UNIX_EPOCH
        );
        assert_eq!(
            Timestamp::UNIX_EPOCH.saturating_duration_since(end),
            Duration::ZERO
        );
    }

    #[test]
    fn timestamp_serialises_as_a_bare_integer_of_milliseconds() {
        let t = Timestamp::from_unix_millis(1_700_000_000_123);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1700000000123");
        let back: Timestamp = serde_json::from_str("1700000000123").unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn system_time_round_trips_at_millisecond_precision() {
        let t = Timestamp::from_unix_millis(1_700_000_000_123);
        assert_eq!(Timestamp::from(SystemTime::from(t)), t);
    }
}
