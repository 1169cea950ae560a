//! The harness the cases share: the process, its world and tenants, and
//! the requests, publishes and waits every case is made of. Everything
//! sent is recorded in the ledger for the final reconciliation.

use std::time::{Duration, Instant};

use awfdrs_bus::Namespace;
use awfdrs_store::Store;
use awfdrs_tests::{Ledger, Up, World, body_hash, dead_letter_of, dead_letters};
use bytes::Bytes;
use serde_json::Value;

use crate::case::{Auth, Body};

/// The harness shared by the cases: the process, its world and tenants.
pub(crate) struct H {
    pub(crate) up: tokio::sync::Mutex<Up>,
    pub(crate) base: String,
    pub(crate) world: World,
    pub(crate) store: Store,
    pub(crate) pool: sqlx::PgPool,
    pub(crate) js: async_nats::jetstream::Context,
    pub(crate) ns: Namespace,
    pub(crate) ledger: Ledger,
    pub(crate) http: reqwest::Client,
    pub(crate) acme: (uuid::Uuid, String),
    pub(crate) globex: (uuid::Uuid, String),
    pub(crate) signed: (uuid::Uuid, String),
    pub(crate) admin: String,
    pub(crate) max_payload: usize,
}

impl H {
    fn subject(&self, tenant: &str, workflow: &str) -> String {
        self.ns.events_subject(tenant, workflow)
    }

    /// The tenant id and the request of `auth` (headers set, body attached).
    pub(crate) fn request(
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
    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> (u16, String, Value) {
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
    pub(crate) async fn post_event(&self, body: &Value) -> (u16, Value) {
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
    pub(crate) async fn publish(
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
    pub(crate) async fn stored(&self, tenant: uuid::Uuid, key: &str) -> Option<Vec<u8>> {
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

    pub(crate) async fn wait_stored(
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
    pub(crate) async fn settle(
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
pub(crate) fn record(h: &H, tenants: &[uuid::Uuid], body: &Value, status: u16) {
    if let Some(key) = body["idempotency_key"].as_str() {
        for t in tenants {
            h.ledger.http(*t, key, body, status);
        }
    }
}
