//! The ingestion contract: `WorkflowEventV1` and its validation.
//!
//! Validation works on the parsed JSON value rather than through serde's
//! derive so that every invalid field is reported at once, each by name.
//! An event that passes can be stored as it is: no string holds a NUL
//! (which PostgreSQL's `text` and `jsonb` refuse), `metadata` is bounded in
//! size and depth, and the correlation id is safe in a header and a log.
//! Names taken from the input (unknown fields, metadata keys) appear in
//! errors escaped and cut short, so an error is itself safe to log.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::slug::is_slug;
use crate::text::{NUL_REASON, check_correlation_id, has_nul, printable_prefix};

mod metadata;

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

/// SHA-256 of an event body in canonical form (object keys sorted), so the
/// same event sent twice with its keys in another order is the same body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyHash(pub [u8; 32]);

impl BodyHash {
    /// The hash of a JSON value in canonical form.
    pub fn of(value: &Value) -> Self {
        Self::of_canonical(&canonical_bytes(value))
    }

    /// The hash of bytes already in canonical form (see [`canonical_bytes`]).
    pub fn of_canonical(canonical: &[u8]) -> Self {
        Self(Sha256::digest(canonical).into())
    }

    /// The hash as a hex string.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

/// A JSON value in canonical form: compact, object keys sorted.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    // serde_json's map is ordered by key (no `preserve_order`), so
    // serializing a parsed value is canonical; serializing a `Value`
    // cannot fail (its keys are strings).
    serde_json::to_vec(value).unwrap_or_default()
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

/// The longest name taken from the input that an error shows.
const MAX_SHOWN_NAME: usize = 64;

/// The contract check proper, without the body hash.
pub(crate) fn check_event(
    value: &Value,
    now: DateTime<Utc>,
) -> Result<WorkflowEventV1, Vec<FieldError>> {
    let Some(obj) = value.as_object() else {
        return Err(vec![FieldError::new("$", "an event must be a JSON object")]);
    };
    let mut errs = Vec::new();
    for key in obj.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            errs.push(FieldError::new(
                printable_prefix(key, MAX_SHOWN_NAME),
                "unknown field",
            ));
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
    let correlation_id = opt_correlation_id(obj, &mut errs);
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
        Some(Value::Object(m)) => metadata::check(m, &mut errs).then(|| m.clone()),
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
            Ok(WorkflowEventV1 {
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
            errs.push(FieldError::new(
                format!("error.{}", printable_prefix(key, MAX_SHOWN_NAME)),
                "unknown field",
            ));
        }
    }
    let code = req_slug(obj, "code", errs);
    let message = match obj.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() > MAX_ERROR_MESSAGE_BYTES => {
            errs.push(FieldError::new(
                "error.message",
                format!("longer than {MAX_ERROR_MESSAGE_BYTES} bytes"),
            ));
            None
        }
        Some(Value::String(s)) if has_nul(s) => {
            errs.push(FieldError::new("error.message", NUL_REASON));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
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
        Some(Value::String(s)) if !(min..=max).contains(&s.chars().count()) => {
            errs.push(FieldError::new(
                field,
                format!("must be {min} to {max} characters"),
            ));
            None
        }
        Some(Value::String(s)) if has_nul(s) => {
            errs.push(FieldError::new(field, NUL_REASON));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
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
        Some(Value::String(s)) if s.chars().count() > max => {
            errs.push(FieldError::new(
                field,
                format!("longer than {max} characters"),
            ));
            None
        }
        Some(Value::String(s)) if has_nul(s) => {
            errs.push(FieldError::new(field, NUL_REASON));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errs.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

fn opt_correlation_id(obj: &Map<String, Value>, errs: &mut Vec<FieldError>) -> Option<String> {
    match obj.get("correlation_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match check_correlation_id(s) {
            Ok(()) => Some(s.clone()),
            Err(reason) => {
                errs.push(FieldError::new("correlation_id", reason));
                None
            }
        },
        Some(_) => {
            errs.push(FieldError::new("correlation_id", "must be a string"));
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

    /// The one error `event` gets, as (field, reason).
    fn only_error(event: &Value) -> (String, String) {
        let errs = parse_event(event, now()).expect_err("refused");
        assert_eq!(errs.len(), 1, "{errs:?}");
        (errs[0].field.clone(), errs[0].reason.clone())
    }

    fn with(field: &str, value: Value) -> Value {
        let mut v = failure();
        v[field] = value;
        v
    }

    #[test]
    fn a_nul_in_the_idempotency_key_is_refused() {
        let got = only_error(&with("idempotency_key", json!("k\u{0}1")));
        assert_eq!(got, ("idempotency_key".into(), NUL_REASON.into()));
    }

    #[test]
    fn a_nul_in_the_workflow_run_id_is_refused() {
        let got = only_error(&with("workflow_run_id", json!("run\u{0}")));
        assert_eq!(got, ("workflow_run_id".into(), NUL_REASON.into()));
    }

    #[test]
    fn a_nul_in_the_step_is_refused() {
        let got = only_error(&with("step", json!("\u{0}")));
        assert_eq!(got, ("step".into(), NUL_REASON.into()));
    }

    #[test]
    fn a_nul_in_the_error_message_is_refused() {
        let mut v = failure();
        v["error"]["message"] = json!("boom\u{0}");
        assert_eq!(only_error(&v), ("error.message".into(), NUL_REASON.into()));
    }

    #[test]
    fn a_nul_in_the_correlation_id_is_refused() {
        let (field, reason) = only_error(&with("correlation_id", json!("c\u{0}")));
        assert_eq!(field, "correlation_id");
        assert!(reason.contains("U+0000"), "{reason}");
    }

    #[test]
    fn a_control_character_in_the_correlation_id_is_refused() {
        for bad in ["x\ny", "x\ry", "x\u{1b}[31m", "x\u{7f}", "x\u{85}"] {
            let (field, _) = only_error(&with("correlation_id", json!(bad)));
            assert_eq!(field, "correlation_id", "{bad:?}");
        }
    }

    #[test]
    fn an_empty_or_overlong_correlation_id_is_refused() {
        assert_eq!(
            only_error(&with("correlation_id", json!(""))).0,
            "correlation_id"
        );
        let long = "c".repeat(256);
        assert_eq!(
            only_error(&with("correlation_id", json!(long))).0,
            "correlation_id"
        );
    }

    #[test]
    fn a_nul_in_a_metadata_value_is_refused_with_its_path() {
        let got = only_error(&with("metadata", json!({"a": {"b": "\u{0}"}})));
        assert_eq!(got, ("metadata.a.b".into(), NUL_REASON.into()));
    }

    #[test]
    fn a_nul_in_a_metadata_key_is_refused_with_its_path() {
        let (field, reason) = only_error(&with("metadata", json!({"a\u{0}": 1})));
        assert_eq!(field, "metadata.a\\u{0}");
        assert!(reason.contains(NUL_REASON), "{reason}");
    }

    #[test]
    fn deeply_nested_metadata_is_refused() {
        let mut m = json!(1);
        for _ in 0..40 {
            m = json!({ "x": m });
        }
        let (field, reason) = only_error(&with("metadata", m));
        assert!(field.starts_with("metadata.x.x"), "{field}");
        assert_eq!(reason, "nested deeper than 32 levels");
    }

    #[test]
    fn an_unknown_field_is_named_escaped_and_cut_short() {
        let mut v = failure();
        v["a\nb"] = json!(1);
        v[format!("{}\u{0}", "z".repeat(100))] = json!(1);
        let errs = parse_event(&v, now()).expect_err("refused");
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields[0], "a\\nb");
        assert_eq!(fields[1], format!("{}…", "z".repeat(64)));
    }

    #[test]
    fn an_unknown_field_inside_error_is_named_escaped() {
        let mut v = failure();
        v["error"]["x\r"] = json!(1);
        assert_eq!(only_error(&v).0, "error.x\\r");
    }

    #[test]
    fn control_characters_other_than_nul_are_kept_in_free_text() {
        let mut v = with("step", json!("line 1\nline 2\t\u{7f}"));
        v["error"]["message"] = json!("multi\nline");
        v["metadata"] = json!({"k\n": "v\u{1}"});
        let e = parse_event(&v, now()).expect("valid");
        assert_eq!(e.event.step.as_deref(), Some("line 1\nline 2\t\u{7f}"));
    }

    #[test]
    fn the_body_hash_is_the_hash_of_the_canonical_bytes() {
        let v = failure();
        let e = parse_event(&v, now()).expect("valid");
        assert_eq!(e.body_hash, BodyHash::of_canonical(&canonical_bytes(&v)));
    }
}
