//! Hostile input over HTTP and NATS against the real `awfdrs up`, driven by
//! one table of cases (name, transport, input, expected outcome). Every case
//! runs, then the suite checks that the process is still alive, `/ready` is
//! 200, and a reconciliation of every answer against the database and the
//! dead letters: every 202 has its events row holding the body that got it,
//! every rejected input left nothing behind, every NATS message is stored
//! or dead-lettered, every outbox row is published, and no control
//! character reached the logs.
//!
//! `AWFDRS_HOSTILE_CASES=<name>,<name>` runs only those cases (the final
//! checks still run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use awfdrs_bus::Namespace;
use awfdrs_store::Store;
use awfdrs_tests::{
    Ledger, Up, World, awfdrs_bin, body_hash, cleanup, dead_letter_of, dead_letters, failure,
    reconcile_within,
};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Who a request authenticates as, and how.
#[derive(Debug, Clone, Copy)]
enum Auth {
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
enum Body {
    None,
    Json(Value),
}

/// One input.
enum Input {
    Post(&'static str, Auth, Body),
    Get(String, Auth),
    /// Published with JetStream to `<ns>.events.acme.<workflow>`.
    Nats(Bytes),
    /// Bytes written to a raw TCP connection to the gateway.
    Raw(Vec<u8>),
    /// A scenario of several steps that checks itself.
    Scenario(Scenario),
}

type Scenario = for<'a> fn(&'a H) -> Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;

/// What must come of one input.
#[derive(Debug, Clone)]
enum Expect {
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
enum Item {
    S(u16),
    Invalid(&'static str),
}

struct Case {
    name: &'static str,
    input: Input,
    expect: Expect,
}

fn case(name: &'static str, input: Input, expect: Expect) -> Case {
    Case {
        name,
        input,
        expect,
    }
}

/// A valid failure event of acme with key `key`.
fn ev(key: &str) -> Value {
    failure(key, "checkout", "hostile_probe")
}

/// `ev(key)` with the field at dotted `path` set to `value`.
fn ev_with(key: &str, path: &str, value: Value) -> Value {
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

fn post(body: Value) -> Input {
    Input::Post("/api/v1/events", Auth::Bearer, Body::Json(body))
}

fn post_as(auth: Auth, body: Value) -> Input {
    Input::Post("/api/v1/events", auth, Body::Json(body))
}

fn batch(items: Vec<Value>) -> Input {
    Input::Post(
        "/api/v1/events/batch",
        Auth::Bearer,
        Body::Json(json!({ "events": items })),
    )
}

fn get(path: &str) -> Input {
    Input::Get(path.to_owned(), Auth::Bearer)
}

fn nats(v: Value) -> Input {
    Input::Nats(Bytes::from(serde_json::to_vec(&v).unwrap()))
}

fn raw(s: &str) -> Input {
    Input::Raw(s.as_bytes().to_vec())
}

/// An incidents cursor whose timestamp is one PostgreSQL cannot hold.
fn out_of_range_cursor() -> String {
    let micros = chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp_micros();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{micros}|{}", uuid::Uuid::nil()))
}

/// The event id the gateway used as `Nats-Msg-Id` up to now: a UUIDv5 of
/// a constant, the tenant slug and the key, which anyone can compute.
fn predictable_msg_id(tenant: &str, key: &str) -> String {
    let ns = uuid::Uuid::from_u128(0x6a1f_3c2e_9b4d_4f0a_8e21_5d7c_0b9a_e413);
    let mut name = tenant.as_bytes().to_vec();
    name.push(0x1f);
    name.extend_from_slice(key.as_bytes());
    uuid::Uuid::new_v5(&ns, &name).to_string()
}

/// The table. One line per hostile input.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use Expect::*;
    let nul = || json!("a\u{0}b");
    vec![
        // Values that would reach a NATS header or a log raw.
        case("http_correlation_id_newline", post(ev_with("http_correlation_id_newline", "correlation_id", json!("x\ny"))), Invalid("correlation_id")),
        case("http_correlation_id_escape", post(ev_with("http_correlation_id_escape", "correlation_id", json!("\u{1b}]0;owned\u{7}\r"))), Invalid("correlation_id")),
        case("http_correlation_id_tab", post(ev_with("http_correlation_id_tab", "correlation_id", json!("a\tb"))), Invalid("correlation_id")),
        case("http_batch_correlation_id_newline", batch(vec![ev("http_batch_corr-0"), ev_with("http_batch_corr-1", "correlation_id", json!("x\ny")), ev("http_batch_corr-2")]), Batch(vec![Item::S(202), Item::Invalid("correlation_id"), Item::S(202)])),
        case("nats_unknown_field_newline", nats(ev_with("nats_unknown_field_newline", "a\nb", json!(1))), Dead("unknown")),
        case("nats_correlation_id_newline_opens_incident", nats({ let mut v = ev_with("nats_corr_incident", "correlation_id", json!("x\ny\r\u{1b}[2J")); v["error"]["code"] = json!("payment_timeout"); v }), Settled),
        case("nats_unknown_field_escape", nats(ev_with("nats_unknown_field_escape", "\u{1b}[2J\r", json!(1))), Dead("unknown")),
        // Characters PostgreSQL cannot store: refused, never 202 then lost.
        case("http_nul_step", post(ev_with("http_nul_step", "step", nul())), Invalid("step")),
        case("http_nul_error_message", post(ev_with("http_nul_error_message", "error.message", nul())), Invalid("error.message")),
        case("http_nul_error_code", post(ev_with("http_nul_error_code", "error.code", nul())), Invalid("error.code")),
        case("http_nul_workflow_run_id", post(ev_with("http_nul_workflow_run_id", "workflow_run_id", nul())), Invalid("workflow_run_id")),
        case("http_nul_metadata_key", post(ev_with("http_nul_metadata_key", "metadata", json!({"a\u{0}b": 1}))), Invalid("metadata")),
        case("http_nul_metadata_value", post(ev_with("http_nul_metadata_value", "metadata.note", nul())), Invalid("metadata")),
        case("http_nul_metadata_nested", post(ev_with("http_nul_metadata_nested", "metadata", json!({"a": {"b": ["ok", "x\u{0}"]}}))), Invalid("metadata")),
        case("http_nul_idempotency_key", post(ev("http_nul_\u{0}_idempotency_key")), Invalid("idempotency_key")),
        case("http_nul_correlation_id", post(ev_with("http_nul_correlation_id", "correlation_id", nul())), Invalid("correlation_id")),
        case("http_batch_nul_items", batch(vec![ev("http_batch_nul-0"), ev("http_batch_nul-\u{0}1"), ev("http_batch_nul-2"), ev_with("http_batch_nul-3", "step", nul()), ev_with("http_batch_nul-4", "metadata", json!({"k\u{0}": 1})), ev_with("http_batch_nul-5", "correlation_id", nul())]), Batch(vec![Item::S(202), Item::Invalid("idempotency_key"), Item::S(202), Item::Invalid("step"), Item::Invalid("metadata"), Item::Invalid("correlation_id")])),
        case("nats_nul_step", nats(ev_with("nats_nul_step", "step", nul())), Dead("step")),
        case("nats_nul_error_message", nats(ev_with("nats_nul_error_message", "error.message", nul())), Dead("error.message")),
        case("nats_nul_workflow_run_id", nats(ev_with("nats_nul_workflow_run_id", "workflow_run_id", nul())), Dead("workflow_run_id")),
        case("nats_nul_metadata_key", nats(ev_with("nats_nul_metadata_key", "metadata", json!({"a\u{0}b": 1}))), Dead("metadata")),
        case("nats_nul_metadata_value", nats(ev_with("nats_nul_metadata_value", "metadata.note", nul())), Dead("metadata")),
        case("nats_nul_idempotency_key", nats(ev("nats_nul_\u{0}_idempotency_key")), Dead("idempotency_key")),
        case("nats_nul_correlation_id", nats(ev_with("nats_nul_correlation_id", "correlation_id", nul())), Dead("correlation_id")),
        // Message ids and the one arbiter of a key.
        case("predictable_message_id", Input::Scenario(|h| Box::pin(predictable_message_id(h))), Scenario),
        case("race_http_and_nats_two_bodies", Input::Scenario(|h| Box::pin(race_http_and_nats(h))), Scenario),
        case("nats_reused_key_after_http", Input::Scenario(|h| Box::pin(nats_reused_key_after_http(h))), Scenario),
        case("http_reused_key_after_nats", Input::Scenario(|h| Box::pin(http_reused_key_after_nats(h))), Scenario),
        // A dead letter too big to copy.
        case("nats_oversized_invalid_message", Input::Scenario(|h| Box::pin(oversized_invalid(h))), Scenario),
        // Slow and unauthenticated clients.
        case("raw_slow_headers", raw("POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"), Closed),
        case("raw_stalled_body", raw("POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"idem"), Closed),
        case("raw_unknown_key_body_not_read", raw("POST /api/v1/events/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer awf_0000\r\nContent-Type: application/json\r\nContent-Length: 8000000\r\n\r\n"), Answer(401)),
        // Cancellation.
        case("cancelled_requests_leave_no_transaction", Input::Scenario(|h| Box::pin(cancelled_requests(h))), Scenario),
        // Client errors are 4xx with problem+json.
        case("http_query_workflow_id_nul", get("/api/v1/incidents?workflow_id=%00"), ClientError),
        case("http_cursor_out_of_range", Input::Get(format!("/api/v1/incidents?cursor={}", out_of_range_cursor()), Auth::Bearer), ClientError),
        case("http_cursor_garbage", get("/api/v1/incidents?cursor=%FF%FE%00"), ClientError),
        case("http_limit_garbage", get("/api/v1/incidents?limit=-1"), ClientError),
        case("http_unknown_path", get("/api/v1/nope"), Status(404)),
        case("http_wrong_method", get("/api/v1/events"), Status(405)),
        case("raw_uri_too_long", Input::Raw(format!("GET /api/v1/incidents?x={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "a".repeat(70_000)).into_bytes()), Answer(414)),
        case("raw_too_many_headers", Input::Raw(format!("GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n{}\r\n", (0..200).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()).into_bytes()), Answer(431)),
        // Keys.
        case("http_lowercase_bearer", post_as(Auth::LowerBearer, ev("http_lowercase_bearer")), Status(202)),
        case("http_two_authorization_headers", post_as(Auth::TwoHeaders, ev("http_two_authorization_headers")), Status(400)),
        case("http_bearer_and_signature_of_other_tenant", post_as(Auth::BearerAndSigned, ev("http_bearer_and_signature")), Status(401)),
        case("http_signed_webhook_accepted", post_as(Auth::Signed(None), ev("http_signed_webhook_accepted")), Status(202)),
        case("http_webhook_timestamp_i64_min", post_as(Auth::Signed(Some(i64::MIN)), ev("http_webhook_timestamp_min")), Status(401)),
        case("http_webhook_timestamp_i64_max", post_as(Auth::Signed(Some(i64::MAX)), ev("http_webhook_timestamp_max")), Status(401)),
        case("http_admin_key_cannot_ingest", post_as(Auth::Admin, ev("http_admin_key_cannot_ingest")), Status(401)),
        case("webhook_401_says_nothing_of_secrets", Input::Scenario(|h| Box::pin(webhook_401_uniform(h))), Scenario),
        case("rotate_and_revoke_key", Input::Scenario(|h| Box::pin(rotate_and_revoke(h))), Scenario),
        case("breakers_scoped_to_tenant", Input::Scenario(|h| Box::pin(breakers_scoped(h))), Scenario),
        // Plain good traffic, which must keep working in between.
        case("http_good_event", post(ev("http_good_event")), Status(202)),
        case("nats_good_event", nats(ev("nats_good_event")), Settled),
    ]
}

/// The harness shared by the cases: the process, its world and tenants.
struct H {
    up: tokio::sync::Mutex<Up>,
    base: String,
    world: World,
    store: Store,
    pool: sqlx::PgPool,
    js: async_nats::jetstream::Context,
    ns: Namespace,
    ledger: Ledger,
    http: reqwest::Client,
    acme: (uuid::Uuid, String),
    globex: (uuid::Uuid, String),
    signed: (uuid::Uuid, String),
    admin: String,
    max_payload: usize,
}

impl H {
    fn subject(&self, tenant: &str, workflow: &str) -> String {
        self.ns.events_subject(tenant, workflow)
    }

    /// The tenant id and the request of `auth` (headers set, body attached).
    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Auth,
        body: &Body,
    ) -> (Vec<uuid::Uuid>, reqwest::RequestBuilder) {
        let bytes = match body {
            Body::None => Vec::new(),
            Body::Json(v) => serde_json::to_vec(v).unwrap(),
        };
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json");
        let mut tenants = vec![self.acme.0];
        let signed = |req: reqwest::RequestBuilder, ts: i64| {
            let sig = awfdrs_domain::webhook::sign(&self.signed.1, "msg_1", ts, &bytes).unwrap();
            req.header("x-awfdrs-tenant", "signed")
                .header("webhook-id", "msg_1")
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
        };
        let now = chrono::Utc::now().timestamp();
        req = match auth {
            Auth::Bearer => req.bearer_auth(&self.acme.1),
            Auth::LowerBearer => req.header("authorization", format!("bearer {}", self.acme.1)),
            Auth::TwoHeaders => {
                tenants.push(self.globex.0);
                req.header("authorization", format!("Bearer {}", self.acme.1))
                    .header("authorization", format!("Bearer {}", self.globex.1))
            }
            Auth::Signed(ts) => {
                tenants = vec![self.signed.0];
                signed(req, ts.unwrap_or(now))
            }
            Auth::BearerAndSigned => {
                tenants.push(self.signed.0);
                signed(req.bearer_auth(&self.acme.1), now)
            }
            Auth::Admin => req.bearer_auth(&self.admin),
        };
        (tenants, req.body(bytes))
    }

    /// Sends a request; (status, content type, body), status 0 without an
    /// answer.
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, String, Value) {
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let ct = r
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let text = r.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                (status, ct, body)
            }
            Err(_) => (0, String::new(), Value::Null),
        }
    }

    /// POSTs one event as acme, recording the answer.
    async fn post_event(&self, body: &Value) -> (u16, Value) {
        let (tenants, req) = self.request(
            reqwest::Method::POST,
            "/api/v1/events",
            Auth::Bearer,
            &Body::Json(body.clone()),
        );
        let (status, _, answer) = self.send(req).await;
        record(self, &tenants, body, status);
        (status, answer)
    }

    /// Publishes `payload` to acme's subject of `workflow` with JetStream;
    /// records it; returns the stream sequence.
    async fn publish(
        &self,
        tenant: (&str, uuid::Uuid),
        workflow: &str,
        msg_id: Option<String>,
        payload: Bytes,
    ) -> Result<u64, String> {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(id) = msg_id {
            headers.insert("Nats-Msg-Id", id.as_str());
        }
        let ack = self
            .js
            .publish_with_headers(self.subject(tenant.0, workflow), headers, payload.clone())
            .await
            .map_err(|e| format!("publish: {e}"))?
            .await
            .map_err(|e| format!("publish ack: {e}"))?;
        let key = serde_json::from_slice::<Value>(&payload)
            .ok()
            .and_then(|v| v["idempotency_key"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("<raw message {}>", ack.sequence));
        self.ledger
            .nats(tenant.1, &key, payload, Some(ack.sequence));
        Ok(ack.sequence)
    }

    /// The body hash of acme's event under `key`, once stored.
    async fn stored(&self, tenant: uuid::Uuid, key: &str) -> Option<Vec<u8>> {
        if key.contains('\0') {
            // PostgreSQL cannot hold it, so nothing can be stored under it.
            return None;
        }
        sqlx::query_scalar(
            "SELECT body_hash FROM events WHERE tenant_id = $1 AND idempotency_key = $2",
        )
        .bind(tenant)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .unwrap()
    }

    async fn wait_stored(
        &self,
        tenant: uuid::Uuid,
        key: &str,
        within: Duration,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(h) = self.stored(tenant, key).await {
                return Some(h);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the message at `sequence` to be stored with its body
    /// (Ok(None)) or dead-lettered (Ok(Some(reason))).
    async fn settle(
        &self,
        sequence: u64,
        tenant: uuid::Uuid,
        payload: &[u8],
        within: Duration,
    ) -> Result<Option<String>, String> {
        let parsed = serde_json::from_slice::<Value>(payload).ok();
        let key = parsed
            .as_ref()
            .and_then(|v| v["idempotency_key"].as_str().map(str::to_owned));
        let deadline = Instant::now() + within;
        loop {
            let dead = dead_letters(&self.pool, &self.js, self.ns.as_str()).await;
            if let Some(d) = dead_letter_of(&dead, Some(sequence), payload) {
                return Ok(Some(d.reason.clone()));
            }
            if let (Some(k), Some(v)) = (&key, &parsed)
                && self.stored(tenant, k).await == Some(body_hash(v))
            {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the message at sequence {sequence} was neither stored nor dead-lettered within {within:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Records the answer for `body` (per item for a batch) under `tenants`.
fn record(h: &H, tenants: &[uuid::Uuid], body: &Value, status: u16) {
    if let Some(key) = body["idempotency_key"].as_str() {
        for t in tenants {
            h.ledger.http(*t, key, body, status);
        }
    }
}

fn is_problem(ct: &str, body: &Value, status: u16) -> Result<(), String> {
    if !ct.starts_with("application/problem+json") {
        return Err(format!(
            "{status} with content type {ct:?}, not application/problem+json: {body}"
        ));
    }
    if body["status"] != status {
        return Err(format!("{status} whose problem body says {body}"));
    }
    Ok(())
}

fn names_field(problem: &Value, field: &str) -> Result<(), String> {
    let named = problem["errors"].as_array().is_some_and(|errs| {
        errs.iter()
            .filter_map(|e| e["field"].as_str())
            .any(|f| f.starts_with(field))
    });
    if named {
        Ok(())
    } else {
        Err(format!("422 does not name {field}: {problem}"))
    }
}

async fn run_case(h: &H, c: &Case) -> Result<(), String> {
    match (&c.input, &c.expect) {
        (Input::Post(path, auth, body), expect) => {
            let times = match expect {
                Expect::Invalid(_) => 2,
                Expect::Status(s) if *s >= 400 => 2,
                _ => 1,
            };
            for attempt in 1..=times {
                let (tenants, req) = h.request(reqwest::Method::POST, path, *auth, body);
                let (status, ct, answer) = h.send(req).await;
                let Body::Json(sent) = body else {
                    unreachable!()
                };
                if let Some(items) = sent["events"].as_array() {
                    let results = answer["results"].as_array();
                    for (i, item) in items.iter().enumerate() {
                        let s = results
                            .and_then(|r| r.get(i))
                            .and_then(|r| r["status"].as_u64())
                            .map_or(status, |s| s as u16);
                        record(h, &tenants, item, s);
                    }
                } else {
                    record(h, &tenants, sent, status);
                }
                let again = if attempt > 1 { " (sent again)" } else { "" };
                check_answer(expect, status, &ct, &answer).map_err(|e| format!("{e}{again}"))?;
            }
            Ok(())
        }
        (Input::Get(path, auth), expect) => {
            let (_, req) = h.request(reqwest::Method::GET, path, *auth, &Body::None);
            let (status, ct, answer) = h.send(req).await;
            check_answer(expect, status, &ct, &answer)
        }
        (Input::Nats(payload), expect) => {
            let seq = h
                .publish(("acme", h.acme.0), "checkout", None, payload.clone())
                .await?;
            let fate = h
                .settle(seq, h.acme.0, payload, Duration::from_secs(30))
                .await?;
            match (expect, fate) {
                (Expect::Settled, _) => Ok(()),
                (Expect::Dead(want), Some(reason)) => {
                    if reason.to_lowercase().contains(&want.to_lowercase()) {
                        Ok(())
                    } else {
                        Err(format!(
                            "dead-lettered, but the reason does not say {want:?}: {reason:?}"
                        ))
                    }
                }
                (Expect::Dead(_), None) => Err("stored, not dead-lettered".into()),
                (e, _) => Err(format!("{e:?} is not an outcome of a NATS message")),
            }
        }
        (Input::Raw(bytes), Expect::Closed) => raw_closed(h, bytes).await,
        (Input::Raw(bytes), Expect::Answer(want)) => {
            let (status, ct, body) = raw_answer(h, bytes, Duration::from_secs(10)).await?;
            if status != *want {
                return Err(format!("answered {status}, not {want}: {body}"));
            }
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
            is_problem(&ct, &body, status)
        }
        (Input::Scenario(f), _) => f(h).await,
        (_, e) => Err(format!("{e:?} does not apply to this input")),
    }
}

fn check_answer(expect: &Expect, status: u16, ct: &str, answer: &Value) -> Result<(), String> {
    if status == 0 {
        return Err("no answer (the connection was dropped)".into());
    }
    match expect {
        Expect::Status(want) => {
            if status != *want {
                return Err(format!("answered {status}, not {want}: {answer}"));
            }
            if status >= 400 {
                is_problem(ct, answer, status)?;
            }
            Ok(())
        }
        Expect::ClientError => {
            if status != 400 && status != 422 {
                return Err(format!("answered {status}, not 400 or 422: {answer}"));
            }
            is_problem(ct, answer, status)
        }
        Expect::Invalid(field) => {
            if status != 422 {
                return Err(format!("answered {status}, not 422: {answer}"));
            }
            is_problem(ct, answer, status)?;
            names_field(answer, field)
        }
        Expect::Batch(items) => {
            if status != 200 {
                return Err(format!("the batch answered {status}, not 200: {answer}"));
            }
            let results = answer["results"].as_array().cloned().unwrap_or_default();
            let got: Vec<u64> = results
                .iter()
                .map(|r| r["status"].as_u64().unwrap_or(0))
                .collect();
            let want: Vec<u64> = items
                .iter()
                .map(|i| match i {
                    Item::S(s) => u64::from(*s),
                    Item::Invalid(_) => 422,
                })
                .collect();
            if got != want {
                return Err(format!("item statuses {got:?}, not {want:?}"));
            }
            for (r, i) in results.iter().zip(items) {
                if let Item::Invalid(field) = i {
                    names_field(&r["error"], field)?;
                }
            }
            Ok(())
        }
        e => Err(format!("{e:?} is not an outcome of an HTTP request")),
    }
}

fn addr(h: &H) -> String {
    h.base.trim_start_matches("http://").to_owned()
}

/// Writes `bytes` and waits (up to a minute) for the server to close.
async fn raw_closed(h: &H, bytes: &[u8]) -> Result<(), String> {
    let s = tokio::net::TcpStream::connect(addr(h))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut r, mut w) = s.into_split();
    w.write_all(bytes)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let within = Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    // A slowloris client: one more byte every two seconds, never the end.
    let dribble = async {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if w.write_all(b"X").await.is_err() {
                return;
            }
        }
    };
    let closed = async {
        tokio::select! {
            () = read_all => {}
            () = dribble => {}
        }
    };
    tokio::time::timeout(within, closed)
        .await
        .map_err(|_| format!("the server still held the connection after {within:?}"))?;
    if h.up.lock().await.alive() {
        Ok(())
    } else {
        Err("the connection closed because the process died".into())
    }
}

/// Writes `bytes` and reads one answer: (status, content type, body).
async fn raw_answer(
    h: &H,
    bytes: &[u8],
    within: Duration,
) -> Result<(u16, String, String), String> {
    let mut s = tokio::net::TcpStream::connect(addr(h))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // The server may answer and close before everything is written.
    let _ = s.write_all(bytes).await;
    let mut data = Vec::new();
    let read = async {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(end) = find(&data, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if data.len() >= end + 4 + len {
                    return;
                }
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .map_err(|_| format!("no answer within {within:?}"))?;
    let end = find(&data, b"\r\n\r\n").ok_or_else(|| {
        format!(
            "the connection closed without an answer ({} bytes)",
            data.len()
        )
    })?;
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let ct = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&data[end + 4..]).into_owned();
    Ok((status, ct, body))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---- Scenarios ----

/// A publisher of another tenant, knowing how message ids are made,
/// publishes first with the id of acme's next event: acme's event must
/// still be stored if it gets a 202.
async fn predictable_message_id(h: &H) -> Result<(), String> {
    let key = "predictable_message_id";
    let attacker = failure("attacker-decoy", "checkout", "hostile_probe");
    h.publish(
        ("globex", h.globex.0),
        "checkout",
        Some(predictable_msg_id("acme", key)),
        Bytes::from(attacker.to_string()),
    )
    .await?;
    let body = ev(key);
    let (status, answer) = h.post_event(&body).await;
    if status != 202 {
        return Err(format!("answered {status}, not 202: {answer}"));
    }
    match h.wait_stored(h.acme.0, key, Duration::from_secs(20)).await {
        Some(hash) if hash == body_hash(&body) => Ok(()),
        Some(_) => Err("202, but another body is stored".into()),
        None => Err("202, but the event was never stored".into()),
    }
}

/// The same key, one body over HTTP and another over NATS at once, 30
/// times: exactly one body is stored; HTTP gets 202 only for its own and
/// 409 otherwise; a NATS message whose body lost is dead-lettered as a
/// reused key; afterwards the HTTP body gets 200 or 409 accordingly.
async fn race_http_and_nats(h: &H) -> Result<(), String> {
    let rounds = 30;
    let mut lies = Vec::new();
    for i in 0..rounds {
        let key = format!("race-{i}");
        let y = ev_with(&key, "step", json!("http-body"));
        let x = ev_with(&key, "step", json!("nats-body"));
        let payload = Bytes::from(x.to_string());
        let (http, nats) = tokio::join!(
            h.post_event(&y),
            h.publish(("acme", h.acme.0), "checkout", None, payload.clone())
        );
        let seq = nats?;
        let Some(stored) = h.wait_stored(h.acme.0, &key, Duration::from_secs(20)).await else {
            lies.push(format!("{key}: nothing stored (HTTP answered {})", http.0));
            continue;
        };
        let y_won = stored == body_hash(&y);
        match (http.0, y_won) {
            (202, true) | (409, false) => {}
            (s, true) => lies.push(format!("{key}: the HTTP body is stored but HTTP got {s}")),
            (s, false) => lies.push(format!("{key}: HTTP got {s} but the NATS body is stored")),
        }
        if y_won {
            match h.settle(seq, h.acme.0, &payload, Duration::from_secs(20)).await {
                Ok(Some(reason)) if reason.to_lowercase().contains("key") => {}
                Ok(Some(reason)) => lies.push(format!(
                    "{key}: the losing NATS body was dead-lettered with {reason:?}, not as a reused key"
                )),
                Ok(None) => lies.push(format!("{key}: the NATS body is stored too")),
                Err(e) => lies.push(format!("{key}: the losing NATS body: {e}")),
            }
        }
        let (again, _) = h.post_event(&y).await;
        let want = if y_won { 200 } else { 409 };
        if again != want {
            lies.push(format!(
                "{key}: the HTTP body sent again got {again}, not {want}"
            ));
        }
    }
    if lies.is_empty() {
        Ok(())
    } else {
        let bad: std::collections::BTreeSet<&str> =
            lies.iter().filter_map(|l| l.split(':').next()).collect();
        Err(format!(
            "{} of {rounds} rounds disagree: {}",
            bad.len(),
            lies.join("; ")
        ))
    }
}

/// A key accepted over HTTP, then reused over NATS with another body: the
/// NATS message is dead-lettered as a reused key; HTTP with that body, 409.
async fn nats_reused_key_after_http(h: &H) -> Result<(), String> {
    let key = "nats_reused_key_after_http";
    let y = ev_with(key, "step", json!("first"));
    let x = ev_with(key, "step", json!("second"));
    let (status, answer) = h.post_event(&y).await;
    if status != 202 {
        return Err(format!("the first body answered {status}: {answer}"));
    }
    h.wait_stored(h.acme.0, key, Duration::from_secs(20))
        .await
        .ok_or("the first body was never stored")?;
    let payload = Bytes::from(x.to_string());
    let seq = h
        .publish(("acme", h.acme.0), "checkout", None, payload.clone())
        .await?;
    match h
        .settle(seq, h.acme.0, &payload, Duration::from_secs(20))
        .await?
    {
        Some(reason) if reason.to_lowercase().contains("key") => {}
        Some(reason) => {
            return Err(format!(
                "dead-lettered, but not as a reused key: {reason:?}"
            ));
        }
        None => return Err("the second body replaced the first".into()),
    }
    let (status, _) = h.post_event(&x).await;
    if status != 409 {
        return Err(format!("the second body over HTTP got {status}, not 409"));
    }
    Ok(())
}

/// A key stored from NATS, then sent over HTTP with another body: 409; with
/// the same body: 200.
async fn http_reused_key_after_nats(h: &H) -> Result<(), String> {
    let key = "http_reused_key_after_nats";
    let x = ev_with(key, "step", json!("first"));
    let y = ev_with(key, "step", json!("second"));
    let payload = Bytes::from(x.to_string());
    let seq = h
        .publish(("acme", h.acme.0), "checkout", None, payload.clone())
        .await?;
    if let Some(reason) = h
        .settle(seq, h.acme.0, &payload, Duration::from_secs(20))
        .await?
    {
        return Err(format!("a good event was dead-lettered: {reason}"));
    }
    let (status, _) = h.post_event(&y).await;
    if status != 409 {
        return Err(format!("another body over HTTP got {status}, not 409"));
    }
    let (status, _) = h.post_event(&x).await;
    if status != 200 {
        return Err(format!("the same body over HTTP got {status}, not 200"));
    }
    Ok(())
}

/// An invalid message as big as the broker takes: its dead letter is kept
/// although a copy of it cannot be published whole.
async fn oversized_invalid(h: &H) -> Result<(), String> {
    // Just under the broker's limit: a copy with dead-letter headers added
    // cannot be published whole.
    let mut v = ev("nats_oversized_invalid_message");
    v["blob"] = json!("");
    let base = serde_json::to_vec(&v).unwrap().len();
    v["blob"] = json!("x".repeat(h.max_payload.saturating_sub(base + 16)));
    let payload = Bytes::from(serde_json::to_vec(&v).unwrap());
    let seq = h
        .publish(("acme", h.acme.0), "checkout", None, payload.clone())
        .await?;
    match h
        .settle(seq, h.acme.0, &payload, Duration::from_secs(45))
        .await?
    {
        Some(_) => Ok(()),
        None => Err("an invalid event was stored".into()),
    }
}

/// Cancelled requests (the client gives up at once, at various points)
/// leave no transaction open and no key half-reserved; the same requests
/// sent again are accepted or found as duplicates.
async fn cancelled_requests(h: &H) -> Result<(), String> {
    let n = 120;
    let bodies: Vec<Value> = (0..n).map(|i| ev(&format!("cancelled-{i}"))).collect();
    // In waves of ten, each request given up after 0.5 to 50 ms: some
    // before the key is reserved, some while it is, some after.
    let mut first = Vec::new();
    for (w, chunk) in bodies.chunks(10).enumerate() {
        let sends = chunk.iter().enumerate().map(|(i, body)| async move {
            let micros = 500 + 5_000 * (i as u64) + 400 * (w as u64);
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_micros(micros))
                .build()
                .unwrap();
            let r = client
                .post(format!("{}/api/v1/events", h.base))
                .bearer_auth(&h.acme.1)
                .json(body)
                .send()
                .await;
            let status = r.map(|r| r.status().as_u16()).unwrap_or(0);
            record(h, &[h.acme.0], body, status);
            status
        });
        first.extend(futures::future::join_all(sends).await);
    }
    eprintln!(
        "cancelled requests: {} of {n} answered before the client gave up",
        first.iter().filter(|s| **s != 0).count()
    );
    let database = h.world.database.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = $1 AND state LIKE 'idle in transaction%'",
        )
        .bind(&database)
        .fetch_one(&h.pool)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{open} sessions still idle in a transaction after the cancelled requests"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut wrong = Vec::new();
    let mut found = 0;
    for body in &bodies {
        let (status, answer) = h.post_event(body).await;
        found += usize::from(status == 200);
        if status != 202 && status != 200 {
            wrong.push(format!("{}: {status} {answer}", body["idempotency_key"]));
        }
    }
    eprintln!("cancelled requests: {found} of {n} already accepted when sent again");
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "sent again after cancellation: {}",
            wrong.join("; ")
        ))
    }
}

/// The 401 for a signed request says the same whether the tenant exists,
/// has a webhook secret or not.
async fn webhook_401_uniform(h: &H) -> Result<(), String> {
    let body = ev("webhook_401_uniform").to_string();
    let now = chrono::Utc::now().timestamp();
    let wrong = awfdrs_domain::webhook::new_secret();
    let sig = awfdrs_domain::webhook::sign(&wrong, "msg_1", now, body.as_bytes()).unwrap();
    let mut answers = Vec::new();
    for tenant in ["signed", "bare", "nobody"] {
        let r = h
            .http
            .post(format!("{}/api/v1/events", h.base))
            .header("content-type", "application/json")
            .header("x-awfdrs-tenant", tenant)
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", sig.clone())
            .body(body.clone());
        let (status, ct, answer) = h.send(r).await;
        if status != 401 {
            return Err(format!("tenant {tenant}: {status}, not 401"));
        }
        is_problem(&ct, &answer, status)?;
        answers.push((tenant, answer["detail"].clone(), answer["title"].clone()));
    }
    if answers
        .iter()
        .all(|a| a.1 == answers[0].1 && a.2 == answers[0].2)
    {
        Ok(())
    } else {
        Err(format!("the 401s differ by tenant: {answers:?}"))
    }
}

/// `awfdrs tenants rotate-key` prints the new key alone; the old key stops
/// working within seconds, the new one works; `revoke-key` stops it too.
async fn rotate_and_revoke(h: &H) -> Result<(), String> {
    let old = awfdrs_domain::new_api_key();
    let t = h
        .store
        .create_tenant("rot", &old)
        .await
        .map_err(|e| e.to_string())?;
    let send = |key: String, n: usize| async move {
        let body = ev(&format!("rotate-{n}"));
        let r = h
            .http
            .post(format!("{}/api/v1/events", h.base))
            .bearer_auth(key)
            .json(&body);
        let (status, _, _) = h.send(r).await;
        record(h, &[t.id], &body, status);
        status
    };
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    if send(old.clone(), next()).await != 202 {
        return Err("the first key does not work".into());
    }
    let cli = |args: &'static [&'static str]| async move {
        tokio::process::Command::new(awfdrs_bin())
            .args(args)
            .env_clear()
            .envs(h.world.env(&[]))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .await
            .expect("run awfdrs")
    };
    let out = cli(&["tenants", "rotate-key", "rot"]).await;
    if !out.status.success() {
        return Err(format!(
            "awfdrs tenants rotate-key failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let new = stdout.trim().to_owned();
    if stdout.lines().count() != 1 || !new.starts_with("awf_") {
        return Err(format!("rotate-key printed {stdout:?}, not the key alone"));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while send(old.clone(), next()).await != 401 {
        if Instant::now() >= deadline {
            return Err("the rotated-out key still works after 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if send(new.clone(), next()).await != 202 {
        return Err("the new key does not work".into());
    }
    let out = cli(&["tenants", "revoke-key", "rot"]).await;
    if !out.status.success() {
        return Err(format!(
            "awfdrs tenants revoke-key failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while send(new.clone(), next()).await != 401 {
        if Instant::now() >= deadline {
            return Err("the revoked key still works after 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// A tenant's key lists only the breakers of vendors it sent events for;
/// an admin key, all of them.
async fn breakers_scoped(h: &H) -> Result<(), String> {
    let mut body = failure("breakers-globex", "checkout", "hostile_probe");
    body["vendor"] = json!("paypal");
    let r = h
        .http
        .post(format!("{}/api/v1/events", h.base))
        .bearer_auth(&h.globex.1)
        .json(&body);
    let (status, _, _) = h.send(r).await;
    record(h, &[h.globex.0], &body, status);
    if status != 202 {
        return Err(format!("globex's event answered {status}"));
    }
    let vendors = |key: String| async move {
        let r = h
            .http
            .get(format!("{}/api/v1/breakers", h.base))
            .bearer_auth(key);
        let (status, _, answer) = h.send(r).await;
        let names: Vec<String> = answer["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["vendor"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        (status, names)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, names) = vendors(h.admin.clone()).await;
        if status == 200 && names.iter().any(|v| v == "paypal") {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the admin key never saw paypal: {status} {names:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, names) = vendors(h.acme.1.clone()).await;
    if status != 200 {
        return Err(format!("acme's breakers answered {status}"));
    }
    let foreign: Vec<&String> = names.iter().filter(|v| *v != "stripe").collect();
    if foreign.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "acme's key lists vendors acme never sent events for: {foreign:?}"
        ))
    }
}

/// Control characters other than line ends in the log, with the terminal
/// colour sequences of a plain formatter taken out.
fn log_control_characters(log: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < log.len() {
        let b = log[i];
        if b == 0x1b && log.get(i + 1) == Some(&b'[') {
            let mut j = i + 2;
            while j < log.len() && (log[j].is_ascii_digit() || log[j] == b';') {
                j += 1;
            }
            if log.get(j) == Some(&b'm') {
                i = j + 1;
                continue;
            }
        }
        if (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f {
            let start = i.saturating_sub(60);
            let end = (i + 20).min(log.len());
            found.push(format!(
                "byte 0x{b:02x} in {:?}",
                String::from_utf8_lossy(&log[start..end])
            ));
        }
        i += 1;
    }
    found
}

#[tokio::test]
async fn hostile_input_never_crashes_loses_or_lies() {
    let world = World::new().await;
    let store = Store::connect(&world.database_url, 4, Duration::from_secs(10))
        .await
        .unwrap();
    let acme_key = awfdrs_domain::new_api_key();
    let globex_key = awfdrs_domain::new_api_key();
    let acme = store.create_tenant("acme", &acme_key).await.unwrap();
    let globex = store.create_tenant("globex", &globex_key).await.unwrap();
    let signed = store
        .create_tenant("signed", &awfdrs_domain::new_api_key())
        .await
        .unwrap();
    store
        .create_tenant("bare", &awfdrs_domain::new_api_key())
        .await
        .unwrap();
    let secret = awfdrs_domain::webhook::new_secret();
    store.set_webhook_secret("signed", &secret).await.unwrap();
    let admin = awfdrs_domain::new_api_key();
    store.create_admin_key("ops", &admin).await.unwrap();

    let log = std::env::temp_dir().join(format!("awfdrs-hostile-{}.log", world.namespace));
    let mut up = Up::spawn(world.env(&[("LOG_FORMAT", "pretty")]), log.clone());
    up.wait_ready(Duration::from_secs(60)).await;
    eprintln!("awfdrs up log: {}", log.display());

    let client = async_nats::connect(awfdrs_tests::nats_url()).await.unwrap();
    let max_payload = client.server_info().max_payload;
    let ns = Namespace::new(world.namespace.clone()).unwrap();
    let h = H {
        base: up.base.clone(),
        up: tokio::sync::Mutex::new(up),
        pool: store.pool().clone(),
        store,
        js: async_nats::jetstream::new(client),
        ns,
        ledger: Ledger::default(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap(),
        acme: (acme.id, acme_key),
        globex: (globex.id, globex_key),
        signed: (signed.id, secret),
        admin,
        max_payload,
        world,
    };

    let only = std::env::var("AWFDRS_HOSTILE_CASES").ok();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| {
            only.as_ref()
                .is_none_or(|o| o.split(',').any(|n| n.trim() == c.name))
        })
        .collect();
    // Slow-client cases wait on the server's timeouts: run them alongside.
    let (slow, quick): (Vec<&Case>, Vec<&Case>) = cases
        .iter()
        .partition(|c| matches!(c.expect, Expect::Closed));
    let slow_runs = futures::future::join_all(
        slow.iter()
            .map(|c| async { (c.name, run_case(&h, c).await) }),
    );
    let quick_runs = async {
        let mut out = Vec::new();
        for c in &quick {
            let mut result = run_case(&h, c).await;
            let mut up = h.up.lock().await;
            if !up.alive() {
                let status = up.exit_status();
                result = Err(format!(
                    "the process died ({status:?}){}",
                    result.err().map(|e| format!("; {e}")).unwrap_or_default()
                ));
                // A poison message may kill it again on redelivery: try a
                // few times, then let the remaining cases find it down.
                for _ in 0..10 {
                    up.kill().await;
                    up.restart();
                    if up.try_ready(Duration::from_secs(30)).await {
                        break;
                    }
                }
            }
            out.push((c.name, result));
        }
        out
    };
    let (slow_results, mut results) = tokio::join!(slow_runs, quick_runs);
    results.extend(slow_results);

    // The end: alive, ready, and every answer reconciled.
    let mut finals = Vec::new();
    {
        let mut up = h.up.lock().await;
        if !up.alive() {
            finals.push(format!("the process is not alive: {:?}", up.exit_status()));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ready = up.ready_status().await;
        while ready != Some(200) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            ready = up.ready_status().await;
        }
        if ready != Some(200) {
            finals.push(format!("/ready answers {ready:?}, not 200"));
        }
    }
    let problems = reconcile_within(
        Duration::from_secs(30),
        &h.pool,
        &h.js,
        h.ns.as_str(),
        &h.ledger,
    )
    .await;
    finals.extend(problems.into_iter().map(|p| format!("reconciliation: {p}")));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let unpublished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&h.pool)
                .await
                .unwrap();
        if unpublished == 0 {
            break;
        }
        if Instant::now() >= deadline {
            finals.push(format!("{unpublished} outbox rows never published"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log_bytes = std::fs::read(&log).unwrap_or_default();
    finals.extend(
        log_control_characters(&log_bytes)
            .into_iter()
            .take(5)
            .map(|c| format!("log: control character {c}")),
    );

    let mut report = String::new();
    for (name, r) in &results {
        match r {
            Ok(()) => report.push_str(&format!("  ok    {name}\n")),
            Err(e) => report.push_str(&format!("  FAIL  {name}: {e}\n")),
        }
    }
    for f in finals.iter().take(30) {
        report.push_str(&format!("  FAIL  final: {f}\n"));
    }
    if finals.len() > 30 {
        report.push_str(&format!(
            "  ... and {} more final failures\n",
            finals.len() - 30
        ));
    }
    eprintln!("hostile input, {} cases:\n{report}", results.len());
    let failed = results.iter().filter(|r| r.1.is_err()).count();
    let mut up = h.up.into_inner();
    up.kill().await;
    let ctx = h.world.context(&[]).await;
    cleanup(&ctx, &h.world).await;
    if failed == 0 && finals.is_empty() {
        let _ = std::fs::remove_file(&log);
    }
    assert!(
        failed == 0 && finals.is_empty(),
        "{failed} of {} cases failed, {} final checks failed (log: {}):\n{report}",
        results.len(),
        finals.len(),
        log.display()
    );
}
