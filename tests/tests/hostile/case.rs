//! How a case is written: the input (its transport, authentication and
//! body) and the outcome it must have, with builders for the table.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use serde_json::{Value, json};

use awfdrs_tests::failure;

use crate::harness::H;

/// Who a request authenticates as, and how.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth {
    /// `Authorization: Bearer <acme's key>`.
    Bearer,
    /// `Authorization: bearer <acme's key>` (the scheme in lower case).
    LowerBearer,
    /// Two `Authorization` headers: acme's key, then globex's.
    TwoHeaders,
    /// A Standard Webhooks signature by tenant `signed`, at this timestamp
    /// (None: now).
    Signed(Option<i64>),
    /// acme's bearer key and a valid signature of tenant `signed`.
    BearerAndSigned,
    /// The admin key.
    Admin,
}

/// A body: JSON, or bytes as they are.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    None,
    Json(Value),
}

/// One input.
pub(crate) enum Input {
    Post(&'static str, Auth, Body),
    Get(String, Auth),
    /// Published with JetStream to `<ns>.events.acme.<workflow>`.
    Nats(Bytes),
    /// Bytes written to a raw TCP connection to the gateway.
    Raw(Vec<u8>),
    /// A scenario of several steps that checks itself.
    Scenario(Scenario),
}

pub(crate) type Scenario =
    for<'a> fn(&'a H) -> Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;

/// What must come of one input.
#[derive(Debug, Clone)]
pub(crate) enum Expect {
    /// This status (a problem+json body when 4xx/5xx); a rejected POST is
    /// sent twice and must be refused both times.
    Status(u16),
    /// `400` or `422`, problem+json.
    ClientError,
    /// `422` naming this field (problem+json), both times it is sent.
    Invalid(&'static str),
    /// `200` with one result per item.
    Batch(Vec<Item>),
    /// Dead-lettered with a reason containing this (case-insensitive).
    Dead(&'static str),
    /// Stored with its body, or dead-lettered.
    Settled,
    /// The server closes the connection (within a minute).
    Closed,
    /// The server answers this status (problem+json) without waiting for
    /// the rest of the request.
    Answer(u16),
    /// The scenario decides.
    Scenario,
}

/// The expected result of one item of a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Item {
    S(u16),
    Invalid(&'static str),
}

pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) input: Input,
    pub(crate) expect: Expect,
}

pub(crate) fn case(name: &'static str, input: Input, expect: Expect) -> Case {
    Case {
        name,
        input,
        expect,
    }
}

/// A valid failure event of acme with key `key`.
pub(crate) fn ev(key: &str) -> Value {
    failure(key, "checkout", "hostile_probe")
}

/// `ev(key)` with the field at dotted `path` set to `value`.
pub(crate) fn ev_with(key: &str, path: &str, value: Value) -> Value {
    let mut v = ev(key);
    let mut at = &mut v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        at = at
            .as_object_mut()
            .unwrap()
            .entry((*p).to_owned())
            .or_insert_with(|| json!({}));
    }
    at[parts[parts.len() - 1]] = value;
    v
}

pub(crate) fn post(body: Value) -> Input {
    Input::Post("/api/v1/events", Auth::Bearer, Body::Json(body))
}

pub(crate) fn post_as(auth: Auth, body: Value) -> Input {
    Input::Post("/api/v1/events", auth, Body::Json(body))
}

pub(crate) fn batch(items: Vec<Value>) -> Input {
    Input::Post(
        "/api/v1/events/batch",
        Auth::Bearer,
        Body::Json(json!({ "events": items })),
    )
}

pub(crate) fn get(path: &str) -> Input {
    Input::Get(path.to_owned(), Auth::Bearer)
}

pub(crate) fn nats(v: Value) -> Input {
    Input::Nats(Bytes::from(serde_json::to_vec(&v).unwrap()))
}

pub(crate) fn raw(s: &str) -> Input {
    Input::Raw(s.as_bytes().to_vec())
}
