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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
