//! The ingestion contract: `WorkflowEventV1` and its validation.
//!
//! Validation works on the parsed JSON value rather than through serde's
//! derive so that every invalid field is reported at once, each by name.
//! An event that passes can be stored as it is: no string holds a NUL
//! (which PostgreSQL's `text` and `jsonb` refuse), `metadata` is bounded in
//! size and depth, and the correlation id is safe in a header and a log.
//! Names taken from the input (unknown fields, metadata keys) appear in
//! errors escaped and cut short, so an error is itself safe to log.
//!
//! The types of the contract are here; the check itself is in `check`
//! (the whole event), `fields` (one top-level field each), `error_info`
//! (the `error` object) and `metadata`; the body hash is in `hash`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod check;
mod error_info;
mod fields;
#[cfg(test)]
mod fixtures;
mod hash;
mod metadata;

pub(crate) use check::check_event;
pub use hash::{BodyHash, canonical_bytes};
pub use metadata::{MAX_METADATA_BYTES, MAX_METADATA_DEPTH};

/// How far in the future `occurred_at` may lie (clock skew allowance).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);
/// Largest `error.message`.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4 * 1024;

/// What happened in a workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    StepStarted,
    StepSucceeded,
    StepFailed,
    WorkflowSucceeded,
    WorkflowFailed,
}

impl EventType {
    /// The wire and database name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::StepStarted => "step_started",
            Self::StepSucceeded => "step_succeeded",
            Self::StepFailed => "step_failed",
            Self::WorkflowSucceeded => "workflow_succeeded",
            Self::WorkflowFailed => "workflow_failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "step_started" => Self::StepStarted,
            "step_succeeded" => Self::StepSucceeded,
            "step_failed" => Self::StepFailed,
            "workflow_succeeded" => Self::WorkflowSucceeded,
            "workflow_failed" => Self::WorkflowFailed,
            _ => return None,
        })
    }

    /// Whether the event reports a failure (and so must carry `error`).
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::StepFailed | Self::WorkflowFailed)
    }

    /// Whether the event reports a success.
    pub const fn is_success(self) -> bool {
        matches!(self, Self::StepSucceeded | Self::WorkflowSucceeded)
    }
}

/// The failure an event reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

/// A workflow event, version 1, as producers send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowEventV1 {
    pub idempotency_key: String,
    pub workflow_id: String,
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// One invalid field: its path (`error.code`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// An event that passed validation, with the hash of the body it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    pub event: WorkflowEventV1,
    pub body_hash: BodyHash,
}

/// Validates one event given as a parsed JSON value against the contract,
/// with `now` as the reference for the future-skew rule.
///
/// # Errors
/// Every invalid field at once, each named by its path.
pub fn parse_event(value: &Value, now: DateTime<Utc>) -> Result<ValidEvent, Vec<FieldError>> {
    Ok(ValidEvent {
        event: check_event(value, now)?,
        body_hash: BodyHash::of(value),
    })
}

#[cfg(test)]
mod tests {
    use super::fixtures::{failure, now};
    use super::*;

    #[test]
    fn the_body_hash_is_the_hash_of_the_canonical_bytes() {
        let v = failure();
        let e = parse_event(&v, now()).expect("valid");
        assert_eq!(e.body_hash, BodyHash::of_canonical(&canonical_bytes(&v)));
    }
}
