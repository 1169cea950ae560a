//! Readers for one top-level field each: required and optional strings,
//! slugs and the correlation id. Each reads its field from the event
//! object, pushes what is wrong with it onto the error list and returns the
//! value only when it is acceptable.

use serde_json::{Map, Value};

use super::FieldError;
use crate::slug::is_slug;
use crate::text::{NUL_REASON, check_correlation_id, has_nul};

/// The longest name taken from the input that an error shows.
pub(super) const MAX_SHOWN_NAME: usize = 64;

pub(super) fn req_string(
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

pub(super) fn opt_string(
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

pub(super) fn opt_correlation_id(
    obj: &Map<String, Value>,
    errs: &mut Vec<FieldError>,
) -> Option<String> {
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

pub(super) fn req_slug(
    obj: &Map<String, Value>,
    field: &str,
    errs: &mut Vec<FieldError>,
) -> Option<String> {
    if obj.get(field).is_none_or(Value::is_null) {
        errs.push(FieldError::new(field, "required"));
        return None;
    }
    opt_slug(obj, field, errs)
}

pub(super) fn opt_slug(
    obj: &Map<String, Value>,
    field: &str,
    errs: &mut Vec<FieldError>,
) -> Option<String> {
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
    use serde_json::json;

    use crate::event::fixtures::{only_error, with};
    use crate::text::NUL_REASON;

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
}
