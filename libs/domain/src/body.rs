//! From bytes to events: the one way producer bytes become validated
//! events, shared by the gateway (a single event body, a batch body) and
//! the detector (a NATS payload, read exactly as a single body).
//!
//! Every error here is safe to show and to log: JSON syntax errors carry
//! no input, and field errors name input keys escaped (see
//! [`crate::event`]).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::event::{BodyHash, FieldError, ValidEvent, canonical_bytes, check_event};

/// An event that passed validation, with its body in canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedEvent {
    /// The event and the hash of its canonical body.
    pub valid: ValidEvent,
    /// The body in canonical form (compact, keys sorted): the bytes
    /// `valid.body_hash` is the hash of, and what to publish.
    pub canonical: Vec<u8>,
}

/// Why a single event body was refused.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not JSON at all (an HTTP `400`).
    #[error("malformed JSON: {0}")]
    Malformed(#[source] serde_json::Error),
    /// JSON, but not a valid event (an HTTP `422`), every field named.
    #[error("invalid event: {}", join(.0))]
    Invalid(Vec<FieldError>),
}

impl BodyError {
    /// A stable label for metrics and dead-letter records.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_json",
            Self::Invalid(_) => "invalid_fields",
        }
    }

    /// The invalid fields, when the body was JSON.
    pub fn fields(&self) -> &[FieldError] {
        match self {
            Self::Malformed(_) => &[],
            Self::Invalid(errs) => errs,
        }
    }
}

/// Why a batch body was refused as a whole (items are judged one by one).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Not JSON at all (an HTTP `400`).
    #[error("malformed JSON: {0}")]
    Malformed(#[source] serde_json::Error),
    /// JSON, but neither an array nor `{"events": [...]}` (a `422`).
    #[error("the body must be a JSON array of events or {{\"events\": [...]}}")]
    Shape,
    /// An empty batch or one over the limit (a `422`).
    #[error("must hold 1 to {max} events, not {found}")]
    Count {
        /// How many items the body held.
        found: usize,
        /// The most a batch may hold.
        max: usize,
    },
}

impl BatchError {
    /// The error as a field error on `events`, for a `422`; `None` for
    /// malformed JSON (a `400`).
    pub fn field_error(&self) -> Option<FieldError> {
        match self {
            Self::Malformed(_) => None,
            Self::Shape | Self::Count { .. } => Some(FieldError::new("events", self.to_string())),
        }
    }
}

/// The verdict on one item of a batch.
pub type ItemResult = Result<ParsedEvent, Vec<FieldError>>;

/// Reads one event body: an HTTP single-event body or a NATS payload.
///
/// # Errors
/// [`BodyError::Malformed`] when the bytes are not JSON,
/// [`BodyError::Invalid`] with every invalid field otherwise.
pub fn parse_body(bytes: &[u8], now: DateTime<Utc>) -> Result<ParsedEvent, BodyError> {
    let value: Value = serde_json::from_slice(bytes).map_err(BodyError::Malformed)?;
    parse_value(&value, now).map_err(BodyError::Invalid)
}

/// Reads a batch body, a JSON array of events or `{"events": [...]}`
/// holding 1 to `max_items` of them, and judges each item on its own.
///
/// # Errors
/// A [`BatchError`] when the body as a whole is unacceptable; a bad item
/// is an `Err` in its place in the returned list.
pub fn parse_batch(
    bytes: &[u8],
    now: DateTime<Utc>,
    max_items: usize,
) -> Result<Vec<ItemResult>, BatchError> {
    let value: Value = serde_json::from_slice(bytes).map_err(BatchError::Malformed)?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut o) if o.len() == 1 => match o.remove("events") {
            Some(Value::Array(items)) => items,
            _ => return Err(BatchError::Shape),
        },
        _ => return Err(BatchError::Shape),
    };
    if items.is_empty() || items.len() > max_items {
        return Err(BatchError::Count {
            found: items.len(),
            max: max_items,
        });
    }
    Ok(items.iter().map(|item| parse_value(item, now)).collect())
}

/// Validates one parsed event and puts its body in canonical form,
/// serializing it once for both the bytes and the hash.
///
/// # Errors
/// Every invalid field at once, each named by its path.
pub fn parse_value(value: &Value, now: DateTime<Utc>) -> Result<ParsedEvent, Vec<FieldError>> {
    let event = check_event(value, now)?;
    let canonical = canonical_bytes(value);
    Ok(ParsedEvent {
        valid: ValidEvent {
            event,
            body_hash: BodyHash::of_canonical(&canonical),
        },
        canonical,
    })
}

fn join(errs: &[FieldError]) -> String {
    errs.iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid time")
    }

    const EVENT: &str = r#"{"workflow_id":"checkout","idempotency_key":"k-1",
        "event_type":"step_started","occurred_at":"2026-01-01T11:00:00Z"}"#;

    #[test]
    fn a_valid_body_is_parsed_into_canonical_bytes_and_their_hash() {
        let p = parse_body(EVENT.as_bytes(), now()).expect("valid");
        assert!(p.canonical.starts_with(br#"{"event_type":"step_started","#));
        assert_eq!(p.valid.body_hash, BodyHash::of_canonical(&p.canonical));
        assert_eq!(p.valid.event.idempotency_key, "k-1");
    }

    #[test]
    fn bytes_that_are_not_json_are_malformed() {
        let e = parse_body(b"{\"a\":", now()).expect_err("refused");
        assert_eq!(e.code(), "malformed_json");
        assert!(e.fields().is_empty());
    }

    #[test]
    fn a_nul_escape_in_a_body_is_an_invalid_field_not_a_malformed_body() {
        let body = EVENT.replace("k-1", "k\\u0000");
        let e = parse_body(body.as_bytes(), now()).expect_err("refused");
        assert_eq!(e.code(), "invalid_fields");
        assert_eq!(e.fields()[0].field, "idempotency_key");
        assert!(
            e.to_string()
                .starts_with("invalid event: idempotency_key: contains a NUL")
        );
    }

    #[test]
    fn a_batch_is_an_array_or_an_events_object() {
        let array = format!("[{EVENT}, 1]");
        let items = parse_batch(array.as_bytes(), now(), 10).expect("batch");
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert_eq!(items[1].as_ref().expect_err("not an object")[0].field, "$");
        let object = format!(r#"{{"events": [{EVENT}]}}"#);
        assert!(parse_batch(object.as_bytes(), now(), 10).expect("batch")[0].is_ok());
    }

    #[test]
    fn a_batch_of_another_shape_is_refused_as_a_whole() {
        for body in [
            r#"{"events": {}}"#,
            r#"{"events": [], "x": 1}"#,
            "3",
            r#"{"items":[]}"#,
        ] {
            let e = parse_batch(body.as_bytes(), now(), 10).expect_err(body);
            assert!(matches!(e, BatchError::Shape), "{body}: {e}");
            assert_eq!(e.field_error().map(|f| f.field), Some("events".into()));
        }
    }

    #[test]
    fn an_empty_or_oversized_batch_is_refused() {
        let e = parse_batch(b"[]", now(), 10).expect_err("empty");
        assert!(matches!(e, BatchError::Count { found: 0, max: 10 }));
        let e = parse_batch(b"[1,2,3]", now(), 2).expect_err("too many");
        assert_eq!(e.to_string(), "must hold 1 to 2 events, not 3");
    }

    #[test]
    fn a_canonical_body_reads_back_with_the_same_hash() {
        // Without exact float parsing this number drifts by one bit on each
        // read (…737e74, …736e74, …735e74), and the hash with it.
        let body = EVENT.replace(
            "\"k-1\",",
            "\"k-1\",\"metadata\":{\"x\":5.568241930831737e74},",
        );
        let first = parse_body(body.as_bytes(), now()).expect("valid");
        let again = parse_body(&first.canonical, now()).expect("valid");
        assert_eq!(again.valid.body_hash, first.valid.body_hash);
        assert_eq!(again.canonical, first.canonical);
    }

    #[test]
    fn a_malformed_batch_has_no_field_error() {
        let e = parse_batch(b"[", now(), 10).expect_err("malformed");
        assert!(e.field_error().is_none());
    }
}
