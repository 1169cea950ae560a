//! Properties of the event parser over arbitrary input: it never panics;
//! whatever it accepts can be stored (no NUL anywhere, a correlation id
//! without control characters, metadata within its bounds) and hashes the
//! same after the canonical body is read again (as the detector reads what
//! the gateway published); whatever it refuses is explained in text that is
//! safe for a header or a log line.

use awfdrs_domain::event::{MAX_METADATA_BYTES, MAX_METADATA_DEPTH};
use awfdrs_domain::text::is_control;
use awfdrs_domain::{
    BodyHash, FieldError, ParsedEvent, check_correlation_id, parse_batch, parse_body, parse_event,
    parse_value,
};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .expect("valid time")
}

/// Strings rich in what matters: NUL, C0, DEL, C1, separators, quotes.
fn text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => any::<char>(),
        4 => proptest::char::range('a', 'z'),
        1 => Just('\0'),
        1 => Just('\n'),
        1 => Just('\r'),
        1 => Just('\u{7f}'),
        1 => Just('\u{85}'),
        1 => Just('\u{2028}'),
        1 => Just('"'),
        1 => Just('\\'),
    ];
    proptest::collection::vec(c, 0..12).prop_map(String::from_iter)
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
        (-1e6f64..1e6).prop_filter_map("finite", Number::from_f64),
    ]
}

/// Strings a well-behaved producer sends: printable, never a NUL.
fn clean_text() -> BoxedStrategy<String> {
    "[ -~é✓]{1,12}".boxed()
}

fn json_with(strings: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        strings.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(strings.clone(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Any JSON value, its strings rich in hostile characters.
fn json_value() -> BoxedStrategy<Value> {
    json_with(text().boxed())
}

fn metadata_with(strings: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    proptest::collection::btree_map(strings.clone(), json_with(strings), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

fn metadata() -> BoxedStrategy<Value> {
    metadata_with(text().boxed())
}

/// A field: mostly plausible, sometimes a hostile string or any value,
/// sometimes absent.
fn field(plausible: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        24 => plausible.prop_map(Some),
        1 => text().prop_map(|s| Some(Value::String(s))),
        1 => json_value().prop_map(Some),
        1 => Just(None),
    ]
    .boxed()
}

fn clean_string() -> BoxedStrategy<Value> {
    clean_text().prop_map(Value::String).boxed()
}

fn slug() -> impl Strategy<Value = Value> {
    "[a-z0-9][a-z0-9_-]{0,8}".prop_map(Value::String)
}

fn error_info() -> impl Strategy<Value = Value> {
    (
        field(slug()),
        field(clean_string()),
        field((100i64..600).prop_map(Value::from)),
        field(any::<bool>().prop_map(Value::Bool)),
    )
        .prop_map(|(code, message, status, retryable)| {
            let mut o = Map::new();
            put(&mut o, "code", code);
            put(&mut o, "message", message);
            put(&mut o, "http_status", status);
            put(&mut o, "retryable", retryable);
            Value::Object(o)
        })
}

fn put(o: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        o.insert(k.to_owned(), v);
    }
}

/// An event-shaped object with any field possibly hostile.
fn event() -> impl Strategy<Value = Value> {
    let event_type = prop_oneof![
        Just("step_started"),
        Just("step_succeeded"),
        Just("step_failed"),
        Just("workflow_failed"),
        Just("workflow_succeeded"),
    ]
    .prop_map(Value::from);
    let occurred_at = prop_oneof![
        4 => Just("2026-01-01T11:59:00Z"),
        1 => Just("2026-01-01T12:04:59+00:00"),
        1 => Just("2026-01-01T13:00:00Z"),
        1 => Just("0000-01-01T00:00:00+23:59"),
        1 => Just("9999-12-31T23:59:59-23:59"),
    ]
    .prop_map(Value::from);
    (
        (
            field(clean_string()),
            field(slug()),
            field(event_type),
            field(occurred_at),
            field(clean_string()),
            field(clean_string()),
        ),
        (
            field(slug()),
            field(error_info()),
            field((1i64..10).prop_map(Value::from)),
            field(clean_string()),
            field(prop_oneof![4 => metadata_with(clean_text()), 1 => metadata()]),
            proptest::option::weighted(0.05, (text(), json_value())),
        ),
    )
        .prop_map(
            |((key, wf, ty, at, run, step), (vendor, err, attempt, corr, meta, extra))| {
                let mut o = Map::new();
                put(&mut o, "idempotency_key", key);
                put(&mut o, "workflow_id", wf);
                put(&mut o, "event_type", ty);
                put(&mut o, "occurred_at", at);
                put(&mut o, "workflow_run_id", run);
                put(&mut o, "step", step);
                put(&mut o, "vendor", vendor);
                put(&mut o, "error", err);
                put(&mut o, "attempt", attempt);
                put(&mut o, "correlation_id", corr);
                put(&mut o, "metadata", meta);
                if let Some((k, v)) = extra {
                    o.insert(k, v);
                }
                Value::Object(o)
            },
        )
}

/// Every string in a JSON value, keys included.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                strings(v, out);
            }
        }
        _ => {}
    }
}

/// What must hold of every accepted event.
fn assert_storable(p: &ParsedEvent) {
    let e = &p.valid.event;
    let stored = serde_json::to_value(e).expect("an event serializes");
    let mut all = Vec::new();
    strings(&stored, &mut all);
    for s in &all {
        assert!(!s.contains('\0'), "accepted a NUL in {s:?}");
    }
    if let Some(c) = &e.correlation_id {
        assert_eq!(check_correlation_id(c), Ok(()));
    }
    if let Some(m) = &e.metadata {
        let size = serde_json::to_vec(m).expect("serializes").len();
        assert!(
            size <= MAX_METADATA_BYTES,
            "accepted {size} bytes of metadata"
        );
    }
    assert_eq!(p.valid.body_hash, BodyHash::of_canonical(&p.canonical));
    // The detector reads the canonical bytes the gateway publishes.
    let again = parse_body(&p.canonical, now()).expect("the canonical body parses again");
    assert_eq!(
        again.valid.body_hash, p.valid.body_hash,
        "hash changed on re-read"
    );
    assert_eq!(again.canonical, p.canonical);
    assert_eq!(&again.valid.event, e);
}

/// What must hold of every refusal: safe to put in a header or a log.
fn assert_safe(errs: &[FieldError]) {
    assert!(!errs.is_empty());
    for e in errs {
        for s in [&e.field, &e.reason] {
            assert!(!s.chars().any(is_control), "control character in {s:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_event_value_is_either_storable_or_refused_safely(v in event()) {
        match parse_value(&v, now()) {
            Ok(p) => {
                assert_storable(&p);
                let direct = parse_event(&v, now()).expect("parse_event agrees");
                prop_assert_eq!(direct.body_hash, p.valid.body_hash);
            }
            Err(errs) => assert_safe(&errs),
        }
    }

    #[test]
    fn any_event_body_reads_the_same_as_its_value(v in event()) {
        let bytes = serde_json::to_vec(&v).expect("serializes");
        match (parse_body(&bytes, now()), parse_value(&v, now())) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(e), Err(errs)) => {
                prop_assert_eq!(e.fields(), errs.as_slice());
                prop_assert!(!e.to_string().chars().any(is_control));
            }
            (a, b) => prop_assert!(false, "body {:?} but value {:?}", a.is_ok(), b.is_ok()),
        }
    }

    #[test]
    fn any_json_value_never_panics_the_parser(v in json_value()) {
        if let Err(errs) = parse_value(&v, now()) {
            assert_safe(&errs);
        }
    }

    #[test]
    fn any_bytes_never_panic_either_body_reader(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(p) = parse_body(&bytes, now()) {
            assert_storable(&p);
        }
        let _ = parse_batch(&bytes, now(), 4);
    }

    #[test]
    fn a_batch_judges_each_item_as_a_single_body_would(items in proptest::collection::vec(event(), 1..6), wrapped: bool) {
        let body = if wrapped { json!({ "events": items }) } else { Value::Array(items.clone()) };
        let bytes = serde_json::to_vec(&body).expect("serializes");
        let results = parse_batch(&bytes, now(), 8).expect("a well-shaped batch");
        prop_assert_eq!(results.len(), items.len());
        for (r, item) in results.iter().zip(&items) {
            match (r, parse_value(item, now())) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, &b),
                (Err(a), Err(b)) => prop_assert_eq!(a, &b),
                _ => prop_assert!(false, "the batch and the single path disagree on {}", item),
            }
        }
    }

    #[test]
    fn metadata_size_is_judged_exactly_as_serialized(rest in metadata(), delta in -4i64..4) {
        // Pad metadata to within a few bytes of the limit either side.
        let Value::Object(mut m) = rest else { unreachable!() };
        m.remove("pad");
        let base = serde_json::to_vec(&m).expect("serializes").len();
        let sep = usize::from(!m.is_empty());
        // `"pad":"…"` adds 8 bytes plus the padding, and a comma when
        // other keys exist.
        let target = i64::try_from(MAX_METADATA_BYTES).expect("fits") + delta;
        let pad = target - i64::try_from(base + 8 + sep).expect("fits");
        prop_assume!(pad >= 0);
        m.insert("pad".into(), Value::String("x".repeat(usize::try_from(pad).expect("fits"))));
        let size = serde_json::to_vec(&m).expect("serializes").len();
        let has_nul = { let mut all = Vec::new(); strings(&Value::Object(m.clone()), &mut all); all.iter().any(|s| s.contains('\0')) };
        prop_assume!(!has_nul);
        let mut v = json!({
            "idempotency_key": "k", "workflow_id": "w", "event_type": "step_started",
            "occurred_at": "2026-01-01T11:00:00Z"
        });
        v["metadata"] = Value::Object(m);
        let verdict = parse_value(&v, now());
        prop_assert_eq!(verdict.is_ok(), size <= MAX_METADATA_BYTES, "size {}: {:?}", size, verdict.err());
    }

    #[test]
    fn metadata_depth_is_bounded(depth in 1usize..48) {
        let mut m = json!({});
        for _ in 1..depth {
            m = json!({ "d": m });
        }
        let v = json!({
            "idempotency_key": "k", "workflow_id": "w", "event_type": "step_started",
            "occurred_at": "2026-01-01T11:00:00Z", "metadata": m
        });
        prop_assert_eq!(parse_value(&v, now()).is_ok(), depth <= MAX_METADATA_DEPTH);
    }
}
