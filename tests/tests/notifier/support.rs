//! The notifier tests' receiver (verifying with the `standardwebhooks`
//! crate), channels and rows.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awfdrs_tests::{System, eventually, failure};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};
use standardwebhooks::Webhook;
use uuid::Uuid;

pub(crate) const WAIT: Duration = Duration::from_secs(90);

/// What a receiver got: headers and the raw body.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) at: Instant,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An answer a receiver gives: status and `Retry-After`.
pub(crate) type Answer = (u16, Option<&'static str>);

/// A local channel receiver: answers from a script of (status,
/// `Retry-After`), then 200, and records every request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Vec<Answer>>>,
    pub(crate) url: String,
}

impl Receiver {
    pub(crate) async fn start(script: &[Answer]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            url: format!("http://{addr}/hook"),
            ..Receiver::default()
        };
        r.script.lock().unwrap().extend(script.iter().rev());
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push(Received {
                        headers,
                        body: body.to_vec(),
                        at: Instant::now(),
                    });
                    let (status, after) = state.script.lock().unwrap().pop().unwrap_or((200, None));
                    let mut headers = HeaderMap::new();
                    if let Some(a) = after {
                        headers.insert("retry-after", HeaderValue::from_static(a));
                    }
                    (StatusCode::from_u16(status).unwrap(), headers, "")
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    pub(crate) fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(WAIT, "notifications received", || async {
            let got = self.got();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

pub(crate) async fn post_channel(sys: &System, key: &str, body: &Value) -> (u16, Value) {
    sys.post("/api/v1/channels", key, body).await
}

/// Adds a channel and returns its id and secret.
pub(crate) async fn add_channel(sys: &System, key: &str, body: Value) -> (Uuid, String) {
    let (status, got) = post_channel(sys, key, &body).await;
    assert_eq!(status, 201, "{got}");
    assert_eq!(got["name"], body["name"]);
    assert_eq!(got["url"], body["url"]);
    let secret = got["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (got["id"].as_str().unwrap().parse().unwrap(), secret)
}

pub(crate) fn channel(name: &str, kind: &str, url: &str) -> Value {
    json!({ "name": name, "kind": kind, "url": url })
}

/// The notification rows of `channel`: (status, tries, msg_id).
pub(crate) async fn notifications(sys: &System, channel: Uuid) -> Vec<(String, i32, String)> {
    sqlx::query_as("SELECT status, tries, msg_id FROM notifications WHERE channel_id = $1")
        .bind(channel)
        .fetch_all(sys.ctx.store.pool())
        .await
        .unwrap()
}

/// Waits until every notification of `channel` is `status`, and there is one.
pub(crate) async fn settled(
    sys: &System,
    channel: Uuid,
    status: &str,
) -> Vec<(String, i32, String)> {
    eventually(WAIT, "notifications settled", || async {
        let rows = notifications(sys, channel).await;
        (!rows.is_empty() && rows.iter().all(|r| r.0 == status)).then_some(rows)
    })
    .await
}

pub(crate) fn verify(secret: &str, r: &Received) -> Result<(), standardwebhooks::WebhookError> {
    Webhook::new(secret).unwrap().verify(&r.body, &r.headers)
}

/// Posts a failure of `workflow` with `code` and returns its incident id.
pub(crate) async fn fail(sys: &System, key: &str, run: &str, workflow: &str, code: &str) -> Uuid {
    let (status, body) = sys
        .post("/api/v1/events", key, &failure(run, workflow, code))
        .await;
    assert_eq!(status, 202, "{body}");
    let pool = sys.ctx.store.pool().clone();
    eventually(WAIT, "the incident opened", || async {
        sqlx::query_scalar("SELECT id FROM incidents WHERE workflow_id = $1")
            .bind(workflow)
            .fetch_optional(&pool)
            .await
            .unwrap()
    })
    .await
}
