//! The contract check of a whole event: unknown fields, each field in
//! turn, and the event built only when nothing was wrong.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::error_info::parse_error;
use super::fields::{
    MAX_SHOWN_NAME, opt_correlation_id, opt_slug, opt_string, req_slug, req_string,
};
use super::{EventType, FieldError, MAX_FUTURE_SKEW, WorkflowEventV1, metadata};
use crate::text::printable_prefix;

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::event::fixtures::{failure, now, only_error, with};
    use crate::event::{EventType, MAX_METADATA_BYTES, parse_event};
    use crate::text::NUL_REASON;

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
    fn events_too_far_in_the_future_are_rejected() {
        let mut v = failure();
        v["occurred_at"] = json!("2026-01-01T12:06:00Z");
        assert!(parse_event(&v, now()).is_err());
        v["occurred_at"] = json!("2026-01-01T12:04:00+00:00");
        assert!(parse_event(&v, now()).is_ok());
    }

    #[test]
    fn oversized_metadata_is_rejected() {
        let mut v = failure();
        v["metadata"] = json!({"blob": "x".repeat(MAX_METADATA_BYTES)});
        let errs = parse_event(&v, now()).expect_err("invalid");
        assert_eq!(errs[0].field, "metadata");
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
    fn control_characters_other_than_nul_are_kept_in_free_text() {
        let mut v = with("step", json!("line 1\nline 2\t\u{7f}"));
        v["error"]["message"] = json!("multi\nline");
        v["metadata"] = json!({"k\n": "v\u{1}"});
        let e = parse_event(&v, now()).expect("valid");
        assert_eq!(e.event.step.as_deref(), Some("line 1\nline 2\t\u{7f}"));
    }
}
