//! Hard retry limits: counts the coordinator keeps, checked before every retry.

use serde::{Deserialize, Serialize};

use crate::HardLimits;

/// Retries already made in each scope the hard limits cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryCounts {
    /// Retries already made for this workflow run.
    pub run: u32,
    /// Retries already made for this incident.
    pub incident: u32,
    /// Retries sent to this vendor in the last hour.
    pub vendor_last_hour: u32,
}

/// Which hard limit a retry would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HardLimit {
    /// `max_retries_per_run`.
    PerRun,
    /// `max_retries_per_incident`.
    PerIncident,
    /// `max_retries_per_vendor_per_hour`.
    PerVendorPerHour,
}

/// A limit another retry would break, with the numbers for the decision record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitExceeded {
    /// The limit.
    pub limit: HardLimit,
    /// Its configured maximum.
    pub max: u32,
    /// Retries already made in its scope.
    pub count: u32,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.limit {
            HardLimit::PerRun => "max_retries_per_run",
            HardLimit::PerIncident => "max_retries_per_incident",
            HardLimit::PerVendorPerHour => "max_retries_per_vendor_per_hour",
        };
        write!(
            f,
            "{} retries already made, {name} is {}",
            self.count, self.max
        )
    }
}

impl HardLimits {
    /// The first limit (run, then incident, then vendor) that one more retry
    /// would break, or `None` when the retry may go ahead.
    #[must_use]
    pub fn exceeded(&self, counts: &RetryCounts) -> Option<LimitExceeded> {
        [
            (HardLimit::PerRun, self.max_retries_per_run, counts.run),
            (
                HardLimit::PerIncident,
                self.max_retries_per_incident,
                counts.incident,
            ),
            (
                HardLimit::PerVendorPerHour,
                self.max_retries_per_vendor_per_hour,
                counts.vendor_last_hour,
            ),
        ]
        .into_iter()
        .find(|(_, max, count)| count >= max)
        .map(|(limit, max, count)| LimitExceeded { limit, max, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_within_every_limit_may_go_ahead() {
        let limits = HardLimits::default();
        assert_eq!(limits.exceeded(&RetryCounts::default()), None);
    }

    #[test]
    fn the_retry_that_would_pass_a_limit_is_refused_naming_it() {
        let limits = HardLimits {
            max_retries_per_run: 3,
            max_retries_per_incident: 10,
            max_retries_per_vendor_per_hour: 100,
        };
        let counts = RetryCounts {
            run: 2,
            incident: 10,
            vendor_last_hour: 5,
        };
        let hit = limits.exceeded(&counts).expect("incident limit reached");
        assert_eq!(hit.limit, HardLimit::PerIncident);
        assert_eq!(
            hit.to_string(),
            "10 retries already made, max_retries_per_incident is 10"
        );
    }

    #[test]
    fn a_zero_limit_disables_retries() {
        let limits = HardLimits {
            max_retries_per_run: 0,
            ..HardLimits::default()
        };
        assert_eq!(
            limits.exceeded(&RetryCounts::default()).map(|h| h.limit),
            Some(HardLimit::PerRun)
        );
    }
}
