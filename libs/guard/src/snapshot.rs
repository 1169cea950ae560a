//! A breaker as operators see it: the API's and the CLI's view.

use awfdrs_safety::BreakerSettings;
use awfdrs_safety::breaker::{self, Breaker, BreakerState};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Timestamp;
use crate::audit::to_utc;

/// One vendor's breaker at an instant, as `GET /api/v1/breakers` lists it.
///
/// `vendor`, `state`, `failure_rate`, `opened_at` and `updated_at` are the
/// contract (DESIGN.md); the rest explains them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerView {
    /// The vendor slug.
    pub vendor: String,
    /// `CLOSED`, `OPEN` or `HALF_OPEN`, as of the instant asked about (an
    /// open breaker past its open duration reads half-open).
    pub state: BreakerState,
    /// Failures over calls in the sliding window (0 with no calls).
    pub failure_rate: f64,
    /// Calls (successes and vendor failures) in the window.
    pub calls: u64,
    /// Vendor failures in the window.
    pub failures: u64,
    /// Distinct failure sources in the window.
    pub distinct_sources: usize,
    /// When it last opened, while open or half-open.
    pub opened_at: Option<DateTime<Utc>>,
    /// When an open breaker half-opens (`null` when forced open: until a reset).
    pub open_until: Option<DateTime<Utc>>,
    /// When the stored value last changed (`null`: never written, so closed).
    pub updated_at: Option<DateTime<Utc>>,
    /// The operator's reason, while forced open.
    pub forced_reason: Option<String>,
    /// Probes in flight, while half-open.
    pub probes_in_flight: usize,
    /// Revision of the KV entry (0: no entry).
    pub revision: u64,
}

/// Why a breaker whose stored value cannot be read holds every retry.
pub(crate) const UNREADABLE: &str = "stored state unreadable: holding retries until a reset";

impl BreakerView {
    /// The view of a stored breaker (or of none: closed) at `now`.
    #[must_use]
    pub(crate) fn of(
        vendor: &str,
        stored: Option<&Breaker>,
        revision: u64,
        settings: &BreakerSettings,
        now: Timestamp,
    ) -> Self {
        let Some(stored) = stored else {
            return Self::closed(vendor);
        };
        let (b, _) = breaker::tick(stored, settings, now);
        let stats = b.window_stats(now, settings);
        Self {
            vendor: vendor.to_owned(),
            state: b.state(),
            failure_rate: stats.failure_rate(),
            calls: stats.calls,
            failures: stats.failures,
            distinct_sources: stats.distinct_sources,
            opened_at: b.opened_at().map(to_utc),
            open_until: b.open_until().map(to_utc),
            updated_at: Some(to_utc(b.updated_at())),
            forced_reason: b.forced_reason().map(str::to_owned),
            probes_in_flight: b.probes().len(),
            revision,
        }
    }

    /// A vendor with no stored breaker: closed, nothing seen.
    #[must_use]
    pub(crate) fn closed(vendor: &str) -> Self {
        Self {
            vendor: vendor.to_owned(),
            state: BreakerState::Closed,
            failure_rate: 0.0,
            calls: 0,
            failures: 0,
            distinct_sources: 0,
            opened_at: None,
            open_until: None,
            updated_at: None,
            forced_reason: None,
            probes_in_flight: 0,
            revision: 0,
        }
    }

    /// A vendor whose stored value does not parse: shown open, as it acts.
    #[must_use]
    pub(crate) fn unreadable(vendor: &str, revision: u64) -> Self {
        Self {
            state: BreakerState::Open,
            forced_reason: Some(UNREADABLE.to_owned()),
            revision,
            ..Self::closed(vendor)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_view_serialises_the_contract_fields() {
        let settings = BreakerSettings::default();
        let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
        let (b, _) = breaker::force_open(&Breaker::new(t0), t0, "maintenance");
        let view = BreakerView::of("stripe", Some(&b), 3, &settings, t0);
        let json = serde_json::to_value(&view).expect("serialises");
        assert_eq!(json["vendor"], "stripe");
        assert_eq!(json["state"], "OPEN");
        assert_eq!(json["failure_rate"], 0.0);
        assert_eq!(json["opened_at"], "2027-01-15T08:00:00Z");
        assert_eq!(json["updated_at"], "2027-01-15T08:00:00Z");
        assert_eq!(json["forced_reason"], "maintenance");
    }

    #[test]
    fn an_open_breaker_past_its_open_duration_reads_half_open() {
        let settings = BreakerSettings::default();
        let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
        let (b, _) = breaker::force_open(&Breaker::new(t0), t0, "x");
        let (b, _) = breaker::reset(&b, t0);
        let outcomes = breaker::Outcomes {
            successes: 0,
            failures: 40,
            sources: vec![1, 2, 3],
        };
        let (b, t) = breaker::record(&b, &settings, t0, &outcomes);
        assert_eq!(t.map(|t| t.to), Some(BreakerState::Open));
        let later = t0.saturating_add(settings.open_duration + Duration::from_millis(1));
        assert_eq!(
            BreakerView::of("v", Some(&b), 1, &settings, later).state,
            BreakerState::HalfOpen
        );
    }
}
