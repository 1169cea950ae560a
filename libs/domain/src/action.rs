//! Actions: what the coordinator does about a decision, and the escalation
//! message it sends when people must act.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decision::{ActionKind, Severity};

/// An action's state: `PENDING → SCHEDULED → EXECUTING → SUCCEEDED |
/// FAILED | CANCELLED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionStatus {
    /// Waiting: on a breaker (a hold), an approval, a pause, or recorded in
    /// shadow mode.
    Pending,
    /// Due at its time.
    Scheduled,
    Executing,
    Succeeded,
    Failed,
    Cancelled,
}

impl ActionStatus {
    /// The state as stored and shown.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Scheduled => "SCHEDULED",
            Self::Executing => "EXECUTING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Whether the action is over.
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for ActionStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "PENDING" => Self::Pending,
            "SCHEDULED" => Self::Scheduled,
            "EXECUTING" => Self::Executing,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "CANCELLED" => Self::Cancelled,
            other => {
                return Err(format!(
                    "unknown action status {other:?}: PENDING, SCHEDULED, EXECUTING, SUCCEEDED, FAILED or CANCELLED"
                ));
            }
        })
    }
}

impl ActionKind {
    /// The kind as stored and shown.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Hold => "hold",
            Self::Escalate => "escalate",
            Self::None => "none",
        }
    }
}

/// An action's id: the same incident, kind and attempt always give the same
/// id.
#[must_use]
pub fn action_id(incident: Uuid, kind: ActionKind, attempt: u32) -> Uuid {
    Uuid::new_v5(&incident, format!("{}:{attempt}", kind.as_str()).as_bytes())
}

/// A hard limit or policy setting that stopped a retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoppedBy {
    /// What was exceeded, in words.
    pub limit: String,
    /// The configuration key that sets it.
    pub config_key: String,
}

/// `<ns>.escalations.<tenant>`: people must act on an incident. Published by
/// the coordinator through its outbox with message id
/// `escalation:<action_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationV1 {
    pub action_id: Uuid,
    pub incident_id: Uuid,
    pub decision_id: Uuid,
    pub tenant_id: Uuid,
    pub tenant: String,
    pub workflow_id: String,
    pub error_code: String,
    pub vendor: Option<String>,
    pub severity: Severity,
    /// The escalation level (1: the tenant's first channels).
    pub level: u32,
    pub reason: String,
    /// The limit that stopped the retry, when one did.
    pub stopped_by: Option<StoppedBy>,
    pub correlation_id: String,
    pub at: DateTime<Utc>,
}

impl EscalationV1 {
    /// The message id of its publication.
    #[must_use]
    pub fn msg_id(&self) -> String {
        format!("escalation:{}", self.action_id)
    }
}

/// `<ns>.commands.<tenant>.<workflow>.retry`: what a producer's workflow
/// engine consumes to retry a failed step. Published by the scheduler
/// through its outbox with message id `retry:<action_id>:<attempt>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryCommandV1 {
    pub action_id: Uuid,
    pub incident_id: Uuid,
    pub tenant: String,
    pub workflow_id: String,
    pub workflow_run_id: Option<String>,
    pub step: Option<String>,
    pub vendor: Option<String>,
    /// 1 for the first retry.
    pub attempt: u32,
    /// The idempotency key of the failed event this retries.
    pub idempotency_key: Option<String>,
    pub correlation_id: String,
    pub due_at: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
}

impl RetryCommandV1 {
    /// The message id of its publication: one per action and attempt.
    #[must_use]
    pub fn msg_id(&self) -> String {
        format!("retry:{}:{}", self.action_id, self.attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_written() {
        for s in [
            ActionStatus::Pending,
            ActionStatus::Scheduled,
            ActionStatus::Executing,
            ActionStatus::Succeeded,
            ActionStatus::Failed,
            ActionStatus::Cancelled,
        ] {
            assert_eq!(s.as_str().parse::<ActionStatus>(), Ok(s));
        }
        assert!("DONE".parse::<ActionStatus>().is_err());
    }

    #[test]
    fn action_ids_are_stable_per_incident_kind_and_attempt() {
        let i = Uuid::from_u128(1);
        assert_eq!(
            action_id(i, ActionKind::Retry, 1),
            action_id(i, ActionKind::Retry, 1)
        );
        assert_ne!(
            action_id(i, ActionKind::Retry, 1),
            action_id(i, ActionKind::Retry, 2)
        );
        assert_ne!(
            action_id(i, ActionKind::Retry, 1),
            action_id(i, ActionKind::Hold, 1)
        );
    }
}
