//! The callback tests' receiver (verifying with the `standardwebhooks`
//! crate) and requests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awfdrs_tests::{System, eventually};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};
use standardwebhooks::Webhook;
use uuid::Uuid;

pub(crate) const WAIT: Duration = Duration::from_secs(90);

/// What a receiver got: headers, the raw body, and when.
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
}

/// An answer a receiver gives: status and `Retry-After`.
pub(crate) type Answer = (u16, Option<&'static str>);

/// A local callback receiver: answers from a script (then 200) and records
/// every request.
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
            url: format!("http://{addr}/hooks/retry"),
            ..Receiver::default()
        };
        r.script.lock().unwrap().extend(script.iter().rev());
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hooks/retry",
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
        eventually(WAIT, "callback deliveries", || async {
            let got = self.got();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

/// A copy of the shipped rules whose payment timeouts are retried after
/// 100 ms instead of 10 s.
pub(crate) fn quick_rules() -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/rules");
    let dir = std::env::temp_dir().join(format!("awfdrs-rules-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "error_codes.yaml",
        "retry_policies.yaml",
        "vendor_config.yaml",
    ] {
        std::fs::copy(from.join(f), dir.join(f)).unwrap();
    }
    let shipped = "  payment_timeout:\n    kind: exponential\n    initial_delay: 10s\n";
    let policies = std::fs::read_to_string(dir.join("retry_policies.yaml")).unwrap();
    assert!(policies.contains(shipped), "the shipped rules changed");
    std::fs::write(
        dir.join("retry_policies.yaml"),
        policies.replace(
            shipped,
            "  payment_timeout:\n    kind: exponential\n    initial_delay: 100ms\n",
        ),
    )
    .unwrap();
    dir
}

pub(crate) async fn start(extra: &[(&str, &str)]) -> (System, PathBuf) {
    let rules = quick_rules();
    let mut env = vec![("AWFDRS__RULES__DIR", rules.to_str().unwrap())];
    env.extend_from_slice(extra);
    (System::start_all(&env).await, rules)
}

pub(crate) async fn put_callback(
    sys: &System,
    key: &str,
    workflow: &str,
    url: &Value,
) -> (u16, Value) {
    let resp = sys
        .http
        .put(format!("{}/api/v1/workflows/{workflow}/callback", sys.base))
        .bearer_auth(key)
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn delete_callback(sys: &System, key: &str, workflow: &str) -> u16 {
    sys.http
        .delete(format!("{}/api/v1/workflows/{workflow}/callback", sys.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Registers `url` for `workflow` and returns its secret.
pub(crate) async fn register(sys: &System, key: &str, workflow: &str, url: &str) -> String {
    let (status, body) = put_callback(sys, key, workflow, &json!(url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["url"], url);
    assert_eq!(body["workflow_id"], workflow);
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    secret
}

/// The latest delivery row of `action`: status, tries, last status code.
pub(crate) async fn delivery(sys: &System, action: Uuid) -> Option<(String, i32, Option<i32>)> {
    sqlx::query_as(
        "SELECT status, tries, last_status_code FROM callback_deliveries
         WHERE action_id = $1 ORDER BY attempt DESC LIMIT 1",
    )
    .bind(action)
    .fetch_optional(sys.ctx.store.pool())
    .await
    .unwrap()
}

pub(crate) fn verify(secret: &str, r: &Received) -> Result<(), standardwebhooks::WebhookError> {
    Webhook::new(secret).unwrap().verify(&r.body, &r.headers)
}

pub(crate) trait ReplaceFirst {
    fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8>;
}

impl ReplaceFirst for Vec<u8> {
    fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = self
            .windows(from.len())
            .position(|w| w == from)
            .expect("present");
        [&self[..at], to, &self[at + from.len()..]].concat()
    }
}
