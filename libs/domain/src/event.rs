//! The ingestion contract: `WorkflowEventV1` and its validation.
//!
//! Validation works on the parsed JSON value rather than through serde's
//! derive so that every invalid field is reported at once, each by name.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::slug::is_slug;

/// How far in the future `occurred_at` may lie (clock skew allowance).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);
/// Largest serialized `metadata` object.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
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
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// SHA-256 of an event body in canonical form (object keys sorted), so the
/// same event sent twice with its keys in another order is the same body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyHash(pub [u8; 32]);

impl BodyHash {
    /// The hash of a JSON value in canonical form.
    pub fn of(value: &Value) -> Self {
        // serde_json's map is ordered by key (no `preserve_order`), so
        // serializing a parsed value is canonical.
        let canonical = serde_json::to_vec(value).unwrap_or_default();
        Self(Sha256::digest(&canonical).into())
    }

    /// The hash as a hex string.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
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
    let Some(obj) = value.as_object() else {
        return Err(vec![FieldError::new("$", "an event must be a JSON object")]);
    };
    let mut errs = Vec::new();
    for key in obj.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            errs.push(FieldError::new(key.clone(), "unknown field"));
        }
    }

    let idempotency_key = req_string(obj, "idempotency_key", 1, 255, &mut errs);
    let workflow_id = req_slug(obj, "workflow_id", &mut errs);
    let event_type = match obj.get("event_type") {
        None | Some(Value::Null) => {
            errs.push(FieldError::new("event_type", "required"));
            None
        }
        Some(Value::String(s)) => EventType::parse(s).or_else(|| {
            errs.push(FieldError::new(
                "event_type",
                "must be one of step_started, step_succeeded, step_failed, workflow_succeeded, workflow_failed",
            ));
            None
        }),
        Some(_) => {
            errs.push(FieldError::new("event_type", "must be a string"));
            None
        }
    };
    let occurred_at = match obj.get("occurred_at") {
        None | Some(Value::Null) => {
            errs.push(FieldError::new("occurred_at", "required"));
            None
        }
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) if t.with_timezone(&Utc) > now + MAX_FUTURE_SKEW => {
                errs.push(FieldError::new(
                    "occurred_at",
                    "more than 5 minutes in the future",
                ));
                None
            }
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                errs.push(FieldError::new(
                    "occurred_at",
                    format!("not an RFC 3339 timestamp: {e}"),
                ));
                None
            }
        },
        Some(_) => {
            errs.push(FieldError::new("occurred_at", "must be an RFC 3339 string"));
            None
        }
    };
    let workflow_run_id = opt_string(obj, "workflow_run_id", 255, &mut errs);
    let step = opt_string(obj, "step", 128, &mut errs);
    let vendor = opt_slug(obj, "vendor", &mut errs);
    let correlation_id = opt_string(obj, "correlation_id", 255, &mut errs);
    let attempt = match obj.get("attempt") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) if (1..=i64::from(i32::MAX)).contains(&n) => i32::try_from(n).ok(),
            _ => {
                errs.push(FieldError::new("attempt", "must be an integer >= 1"));
                None
            }
        },
    };
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
            if size > MAX_METADATA_BYTES {
                errs.push(FieldError::new(
                    "metadata",
                    format!("{size} bytes serialized; at most {MAX_METADATA_BYTES}"),
                ));
                None
            } else {
                Some(m.clone())
            }
        }
        Some(_) => {
            errs.push(FieldError::new("metadata", "must be an object"));
            None
        }
    };
    let error = parse_error(obj.get("error"), event_type, &mut errs);

    if !errs.is_empty() {
        return Err(errs);
    }
    match (idempotency_key, workflow_id, event_type, occurred_at) {
        (Some(idempotency_key), Some(workflow_id), Some(event_type), Some(occurred_at)) => {
            Ok(ValidEvent {
                event: WorkflowEventV1 {
                    idempotency_key,
                    workflow_id,
                    event_type,
                    occurred_at,
                    workflow_run_id,
                    step,
                    vendor,
                    error,
                    attempt,
                    correlation_id,
                    metadata,
                },
                body_hash: BodyHash::of(value),
            })
        }
        _ => Err(vec![FieldError::new("$", "invalid event")]),
    }
}

const KNOWN_FIELDS: &[&str] = &[
    "idempotency_key",
    "workflow_id",
    "event_type",
    "occurred_at",
    "workflow_run_id",
    "step",
    "vendor",
    "error",
    "attempt",
    "correlation_id",
    "metadata",
];

fn parse_error(
    v: Option<&Value>,
    event_type: Option<EventType>,
    errs: &mut Vec<FieldError>,
) -> Option<ErrorInfo> {
    let failure = event_type.is_some_and(EventType::is_failure);
    let obj = match v {
        None | Some(Value::Null) => {
            if failure {
                errs.push(FieldError::new("error", "required for *_failed events"));
            }
            return None;
        }
        Some(Value::Object(o)) => o,
        Some(_) => {
            errs.push(FieldError::new("error", "must be an object"));
            return None;
        }
    };
    let before = errs.len();
    for key in obj.keys() {
        if !["code", "message", "http_status", "retryable"].contains(&key.as_str()) {
            errs.push(FieldError::new(format!("error.{key}"), "unknown field"));
        }
    }
    let code = req_slug(obj, "code", errs);
    let message = match obj.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= MAX_ERROR_MESSAGE_BYTES => Some(s.clone()),
        Some(Value::String(_)) => {
            errs.push(FieldError::new(
                "error.message",
                format!("longer than {MAX_ERROR_MESSAGE_BYTES} bytes"),
            ));
            None
        }
        Some(_) => {
            errs.push(FieldError::new("error.message", "must be a string"));
            None
        }
    };
    let http_status = match obj.get("http_status") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) if (100..=599).contains(&n) => i32::try_from(n).ok(),
            _ => {
                errs.push(FieldError::new(
                    "error.http_status",
                    "must be an integer between 100 and 599",
                ));
                None
            }
        },
    };
    let retryable = match obj.get("retryable") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errs.push(FieldError::new("error.retryable", "must be a boolean"));
            None
        }
    };
    // Field names inside `error` were pushed unprefixed by `req_slug`.
    for e in &mut errs[before..] {
        if !e.field.starts_with("error.") {
            e.field = format!("error.{}", e.field);
        }
    }
    Some(ErrorInfo {
        code: code?,
        message,
        http_status,
        retryable,
    })
}

fn req_string(
    obj: &Map<String, Value>,
    field: &str,
    min: usize,
    max: usize,
    errs: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => {
            errs.push(FieldError::new(field, "required"));
            None
        }
        Some(Value::String(s)) if (min..=max).contains(&s.chars().count()) => Some(s.clone()),
        Some(Value::String(_)) => {
            errs.push(FieldError::new(
                field,
                format!("must be {min} to {max} characters"),
            ));
            None
        }
        Some(_) => {
            errs.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

fn opt_string(
    obj: &Map<String, Value>,
    field: &str,
    max: usize,
    errs: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
        Some(Value::String(_)) => {
            errs.push(FieldError::new(
                field,
                format!("longer than {max} characters"),
            ));
            None
        }
        Some(_) => {
            errs.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

fn req_slug(obj: &Map<String, Value>, field: &str, errs: &mut Vec<FieldError>) -> Option<String> {
    if obj.get(field).is_none_or(Value::is_null) {
        errs.push(FieldError::new(field, "required"));
        return None;
    }
    opt_slug(obj, field, errs)
}

fn opt_slug(obj: &Map<String, Value>, field: &str, errs: &mut Vec<FieldError>) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_slug(s) => Some(s.clone()),
        Some(_) => {
            errs.push(FieldError::new(
                field,
                "must be a slug matching [a-z0-9][a-z0-9_-]{0,62}",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid time")
    }

    fn failure() -> Value {
        json!({
            "idempotency_key": "k-1",
            "workflow_id": "checkout",
            "event_type": "step_failed",
            "occurred_at": "2026-01-01T11:59:00Z",
            "step": "charge",
            "vendor": "stripe",
            "error": {"code": "payment_timeout", "message": "timed out", "http_status": 504}
        })
    }

    #[test]
    fn a_complete_failure_event_is_valid() {
        let v = parse_event(&failure(), now()).expect("valid");
        assert_eq!(v.event.event_type, EventType::StepFailed);
        assert_eq!(
            v.event.error.as_ref().map(|e| e.code.as_str()),
            Some("payment_timeout")
        );
    }

    #[test]
    fn every_invalid_field_is_named() {
        let bad = json!({
            "idempotency_key": "",
            "workflow_id": "Check Out",
            "event_type": "exploded",
            "occurred_at": "yesterday",
            "attempt": 0,
            "bogus": 1
        });
        let errs = parse_event(&bad, now()).expect_err("invalid");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "idempotency_key",
            "workflow_id",
            "event_type",
            "occurred_at",
            "attempt",
            "bogus",
        ] {
            assert!(fields.contains(&f), "{f} not reported in {fields:?}");
        }
    }

    #[test]
    fn failures_need_an_error_with_a_slug_code() {
        let mut v = failure();
        v["error"] = json!({"message": "x", "http_status": 42});
        let errs = parse_event(&v, now()).expect_err("invalid");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["error.code", "error.http_status"]);
        v.as_object_mut().map(|o| o.remove("error"));
        let errs = parse_event(&v, now()).expect_err("invalid");
        assert_eq!(errs[0].field, "error");
    }

    #[test]
    fn events_too_far_in_the_future_are_rejected() {
        let mut v = failure();
        v["occurred_at"] = json!("2026-01-01T12:06:00Z");
        assert!(parse_event(&v, now()).is_err());
        v["occurred_at"] = json!("2026-01-01T12:04:00+00:00");
        assert!(parse_event(&v, now()).is_ok());
    }

    #[test]
    fn body_hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":2}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"b":2,"a":1}"#).expect("json");
        assert_eq!(BodyHash::of(&a), BodyHash::of(&b));
    }

    #[test]
    fn oversized_metadata_is_rejected() {
        let mut v = failure();
        v["metadata"] = json!({"blob": "x".repeat(MAX_METADATA_BYTES)});
        let errs = parse_event(&v, now()).expect_err("invalid");
        assert_eq!(errs[0].field, "metadata");
    }
}
