//! The messages workers send each other, one versioned type per message,
//! written and read by the same type on both sides. A change a reader could
//! not take is a new version (`…V2`), published beside the old one until
//! every reader has moved.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `<ns>.incidents.<tenant>.opened`: an incident was opened, or re-opened
/// within its window. Published by the detector through its outbox, with
/// message id `incident-opened:<incident_id>:opened` (or `:reopened:<n>`).
/// The same message on `<ns>.incidents.<tenant>.retry_failed` (message id
/// `incident-opened:<incident_id>:retry-failed:<attempt>`) says that a
/// failure of the same run followed the incident's retry, named in
/// `failed_retry`.
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
    /// The retry a later failure of the same run failed, when that is why
    /// the incident is announced again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_retry: Option<FailedRetry>,
}

/// A retry that did not fix its run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailedRetry {
    pub action_id: Uuid,
    pub attempt: u32,
}

impl IncidentOpenedV1 {
    /// The message's id suffix: `opened` or `reopened`.
    pub const fn kind(&self) -> &'static str {
        if self.failed_retry.is_some() {
            "retry_failed"
        } else if self.reopened {
            "reopened"
        } else {
            "opened"
        }
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
            failed_retry: None,
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
    fn a_failed_retry_is_written_only_when_there_is_one() {
        let json = serde_json::to_value(opened()).expect("serialize");
        assert!(json.get("failed_retry").is_none());
        let mut m = opened();
        m.failed_retry = Some(FailedRetry {
            action_id: Uuid::nil(),
            attempt: 2,
        });
        assert_eq!(m.kind(), "retry_failed");
        let back: IncidentOpenedV1 =
            serde_json::from_value(serde_json::to_value(&m).expect("serialize"))
                .expect("deserialize");
        assert_eq!(back, m);
    }

    #[test]
    fn a_message_with_a_field_this_version_does_not_know_is_refused() {
        let mut json = serde_json::to_value(opened()).expect("serialize");
        json["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<IncidentOpenedV1>(json).is_err());
    }
}
