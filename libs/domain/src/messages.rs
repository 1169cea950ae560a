//! The messages workers send each other, one versioned type per message,
//! written and read by the same type on both sides. A change a reader could
//! not take is a new version (`…V2`), published beside the old one until
//! every reader has moved.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `<ns>.incidents.<tenant>.opened`: an incident was opened, or re-opened
/// within its window. Published by the detector through its outbox, with
/// message id `incident-opened:<incident_id>:opened` (or `:reopened`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentOpenedV1 {
    pub incident_id: Uuid,
    pub tenant_id: Uuid,
    /// The tenant's slug.
    pub tenant: String,
    pub signature: String,
    pub workflow_id: String,
    /// The normalised error code.
    pub error_code: String,
    pub vendor: Option<String>,
    pub step: Option<String>,
    /// Whether a resolved incident was re-opened rather than a new one opened.
    pub reopened: bool,
    /// The correlation id of the failure that opened it.
    pub correlation_id: String,
}

impl IncidentOpenedV1 {
    /// The message's id suffix: `opened` or `reopened`.
    pub const fn kind(&self) -> &'static str {
        if self.reopened { "reopened" } else { "opened" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened() -> IncidentOpenedV1 {
        IncidentOpenedV1 {
            incident_id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            tenant: "acme".into(),
            signature: "sig".into(),
            workflow_id: "checkout".into(),
            error_code: "payment_timeout".into(),
            vendor: Some("stripe".into()),
            step: None,
            reopened: false,
            correlation_id: "c-1".into(),
        }
    }

    #[test]
    fn an_opened_message_reads_back_as_written() {
        let m = opened();
        let json = serde_json::to_value(&m).expect("serialize");
        assert_eq!(json["vendor"], "stripe");
        assert!(json["step"].is_null(), "absent values are written as null");
        let back: IncidentOpenedV1 = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, m);
    }

    #[test]
    fn a_message_with_a_field_this_version_does_not_know_is_refused() {
        let mut json = serde_json::to_value(opened()).expect("serialize");
        json["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<IncidentOpenedV1>(json).is_err());
    }
}
