//! Feeds arbitrary bytes through every way producer bytes become events:
//! an HTTP single-event body and a NATS payload (`parse_body`, which the
//! gateway and the detector both call) and an HTTP batch body
//! (`parse_batch`). None may panic; whatever is accepted must be storable
//! and hash the same when its canonical body is read again; whatever is
//! refused must be explained in text safe for a header or a log line.

#![no_main]

use awfdrs_domain::text::is_control;
use awfdrs_domain::{
    BodyError, BodyHash, FieldError, ParsedEvent, check_correlation_id, parse_batch, parse_body,
};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The batch limit the gateway ships with.
const MAX_BATCH_ITEMS: usize = 100;

fuzz_target!(|data: &[u8]| {
    let now = DateTime::<Utc>::from_timestamp(1_767_268_800, 0).unwrap_or_default();
    match parse_body(data, now) {
        Ok(p) => assert_storable(&p, now),
        Err(e) => {
            assert_safe(&e.to_string());
            if let BodyError::Invalid(errs) = &e {
                assert_fields_safe(errs);
            }
        }
    }
    match parse_batch(data, now, MAX_BATCH_ITEMS) {
        Ok(items) => {
            assert!((1..=MAX_BATCH_ITEMS).contains(&items.len()));
            for item in &items {
                match item {
                    Ok(p) => assert_storable(p, now),
                    Err(errs) => assert_fields_safe(errs),
                }
            }
        }
        Err(e) => assert_safe(&e.to_string()),
    }
});

/// An accepted event holds no NUL anywhere, a correlation id without
/// control characters, and the canonical body reads back to itself.
fn assert_storable(p: &ParsedEvent, now: DateTime<Utc>) {
    let e = &p.valid.event;
    let stored = serde_json::to_value(e).expect("an event serializes");
    assert!(!has_nul(&stored), "accepted a NUL: {stored}");
    if let Some(c) = &e.correlation_id {
        assert_eq!(check_correlation_id(c), Ok(()));
    }
    assert_eq!(p.valid.body_hash, BodyHash::of_canonical(&p.canonical));
    let again = parse_body(&p.canonical, now).expect("the canonical body parses again");
    assert_eq!(again.valid.body_hash, p.valid.body_hash);
    assert_eq!(&again.valid.event, e);
}

fn assert_fields_safe(errs: &[FieldError]) {
    assert!(!errs.is_empty());
    for e in errs {
        assert_safe(&e.field);
        assert_safe(&e.reason);
    }
}

fn assert_safe(s: &str) {
    assert!(!s.chars().any(is_control), "control character in {s:?}");
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}
