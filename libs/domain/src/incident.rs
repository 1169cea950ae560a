//! Incident lifecycle states.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an incident is in `NEW → ANALYZING → ACTIONED → RESOLVED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IncidentStatus {
    New,
    Analyzing,
    Actioned,
    Resolved,
}

impl IncidentStatus {
    /// The name stored in the database and shown in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::New => "NEW",
            Self::Analyzing => "ANALYZING",
            Self::Actioned => "ACTIONED",
            Self::Resolved => "RESOLVED",
        }
    }
}

impl fmt::Display for IncidentStatus {
    /// The name, padded to the formatter's width (tables).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for IncidentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "NEW" => Ok(Self::New),
            "ANALYZING" => Ok(Self::Analyzing),
            "ACTIONED" => Ok(Self::Actioned),
            "RESOLVED" => Ok(Self::Resolved),
            other => Err(format!(
                "unknown incident status {other:?}: expected NEW, ANALYZING, ACTIONED or RESOLVED"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [IncidentStatus; 4] = [
        IncidentStatus::New,
        IncidentStatus::Analyzing,
        IncidentStatus::Actioned,
        IncidentStatus::Resolved,
    ];

    #[test]
    fn every_status_reads_back_from_its_name_and_its_json() {
        for s in ALL {
            assert_eq!(s.as_str().parse::<IncidentStatus>(), Ok(s));
            let json = serde_json::to_value(s).expect("serialize");
            assert_eq!(json, s.as_str());
        }
        assert!("OPEN".parse::<IncidentStatus>().is_err());
        assert!("resolved".parse::<IncidentStatus>().is_err());
    }

    #[test]
    fn a_status_is_padded_to_the_width_asked_for() {
        assert_eq!(format!("{:<10}|", IncidentStatus::New), "NEW       |");
    }
}
