//! The `error` object of an event: required on `*_failed` events, its
//! fields checked one by one and reported as `error.<field>`.

use serde_json::Value;

use super::fields::{MAX_SHOWN_NAME, req_slug};
use super::{ErrorInfo, EventType, FieldError, MAX_ERROR_MESSAGE_BYTES};
use crate::text::{NUL_REASON, has_nul, printable_prefix};

pub(super) fn parse_error(
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::event::fixtures::{failure, now, only_error};
    use crate::event::parse_event;
    use crate::text::NUL_REASON;

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
    fn a_nul_in_the_error_message_is_refused() {
        let mut v = failure();
        v["error"]["message"] = json!("boom\u{0}");
        assert_eq!(only_error(&v), ("error.message".into(), NUL_REASON.into()));
    }

    #[test]
    fn an_unknown_field_inside_error_is_named_escaped() {
        let mut v = failure();
        v["error"]["x\r"] = json!(1);
        assert_eq!(only_error(&v).0, "error.x\\r");
    }
}
