//! Events shared by the unit tests of this module: a valid failure event,
//! a fixed `now`, and helpers to vary one field and read the one error.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::parse_event;

pub(super) fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .expect("valid time")
}

pub(super) fn failure() -> Value {
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

/// The one error `event` gets, as (field, reason).
pub(super) fn only_error(event: &Value) -> (String, String) {
    let errs = parse_event(event, now()).expect_err("refused");
    assert_eq!(errs.len(), 1, "{errs:?}");
    (errs[0].field.clone(), errs[0].reason.clone())
}

pub(super) fn with(field: &str, value: Value) -> Value {
    let mut v = failure();
    v[field] = value;
    v
}
