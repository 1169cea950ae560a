//! Workflow HTTP callbacks end to end: a registered callback receives each
//! retry command exactly as published on NATS, signed with Standard
//! Webhooks (checked here by an independent implementation, the
//! `standardwebhooks` crate), retried with backoff and `Retry-After` until
//! delivered, and recorded on the action; URLs are checked hard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awfdrs_domain::RetryCommandV1;
use awfdrs_tests::{System, eventually, failure};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use futures::StreamExt;
use serde_json::{Value, json};
use standardwebhooks::Webhook;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(90);

/// What a receiver got: headers, the raw body, and when.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

/// An answer a receiver gives: status and `Retry-After`.
type Answer = (u16, Option<&'static str>);

/// A local callback receiver: answers from a script (then 200) and records
/// every request.
#[derive(Debug, Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Vec<Answer>>>,
    url: String,
}

impl Receiver {
    async fn start(script: &[Answer]) -> Self {
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

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(WAIT, "callback deliveries", || async {
            let got = self.got();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

/// A copy of the shipped rules whose payment timeouts are retried after
/// 100 ms instead of 10 s.
fn quick_rules() -> PathBuf {
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

async fn start(extra: &[(&str, &str)]) -> (System, PathBuf) {
    let rules = quick_rules();
    let mut env = vec![("AWFDRS__RULES__DIR", rules.to_str().unwrap())];
    env.extend_from_slice(extra);
    (System::start_all(&env).await, rules)
}

async fn put_callback(sys: &System, key: &str, workflow: &str, url: &Value) -> (u16, Value) {
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

async fn delete_callback(sys: &System, key: &str, workflow: &str) -> u16 {
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
async fn register(sys: &System, key: &str, workflow: &str, url: &str) -> String {
    let (status, body) = put_callback(sys, key, workflow, &json!(url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["url"], url);
    assert_eq!(body["workflow_id"], workflow);
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    secret
}

/// The latest delivery row of `action`: status, tries, last status code.
async fn delivery(sys: &System, action: Uuid) -> Option<(String, i32, Option<i32>)> {
    sqlx::query_as(
        "SELECT status, tries, last_status_code FROM callback_deliveries
         WHERE action_id = $1 ORDER BY attempt DESC LIMIT 1",
    )
    .bind(action)
    .fetch_optional(sys.ctx.store.pool())
    .await
    .unwrap()
}

fn verify(secret: &str, r: &Received) -> Result<(), standardwebhooks::WebhookError> {
    Webhook::new(secret).unwrap().verify(&r.body, &r.headers)
}

#[tokio::test]
async fn a_registered_callback_receives_the_retry_command_as_published_and_signed() {
    let (sys, rules) = start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let (_, other_key) = sys.tenant("globex").await;
    let receiver = Receiver::start(&[]).await;
    let others = Receiver::start(&[]).await;
    let secret = register(&sys, &key, "checkout", &receiver.url).await;
    // Another tenant's callback on the same workflow is its own.
    register(&sys, &other_key, "checkout", &others.url).await;
    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{}.commands.>", sys.ns().as_str()))
        .await
        .unwrap();
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("order-1-charge-1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let msg = tokio::time::timeout(WAIT, commands.next())
        .await
        .expect("a retry command")
        .unwrap();
    let command: RetryCommandV1 = serde_json::from_slice(&msg.payload).unwrap();
    let msg_id = format!("retry:{}:1", command.action_id);
    assert_eq!(msg.header("Nats-Msg-Id"), Some(msg_id.as_str()));

    let got = receiver.wait_for(1).await;
    let r = &got[0];
    assert_eq!(r.body, msg.payload.to_vec(), "the body as published");
    assert_eq!(r.header("webhook-id"), msg_id);
    assert_eq!(r.header("content-type"), "application/json");
    verify(&secret, r).expect("signed with the callback's secret");

    // The receiver's check refuses what a real delivery is not.
    let mut empty = r.clone();
    empty
        .headers
        .insert("webhook-signature", HeaderValue::from_static(""));
    assert!(verify(&secret, &empty).is_err(), "an empty signature");
    let mut stale = r.clone();
    let old = chrono::Utc::now().timestamp() - 6 * 60;
    let resigned = Webhook::new(&secret)
        .unwrap()
        .sign(&msg_id, old, &r.body)
        .unwrap();
    stale.headers.insert("webhook-timestamp", old.into());
    stale
        .headers
        .insert("webhook-signature", resigned.parse().unwrap());
    assert!(
        matches!(
            verify(&secret, &stale),
            Err(standardwebhooks::WebhookError::TimestampTooOldError)
        ),
        "a timestamp over 5 minutes old"
    );
    let wrong = awfdrs_domain::webhook::new_secret();
    let mut forged = r.clone();
    let sig = Webhook::new(&wrong)
        .unwrap()
        .sign(&msg_id, chrono::Utc::now().timestamp(), &r.body)
        .unwrap();
    forged
        .headers
        .insert("webhook-signature", sig.parse().unwrap());
    assert!(
        matches!(
            verify(&secret, &forged),
            Err(standardwebhooks::WebhookError::InvalidSignature)
        ),
        "a signature made with another secret"
    );
    let mut tampered = r.clone();
    tampered.body = r.body.replace_first(b"checkout", b"checkouT");
    assert!(verify(&secret, &tampered).is_err(), "another body");

    // The outcome is on the action.
    let action: Value = eventually(WAIT, "the callback on the action", || async {
        let (_, list) = sys.get("/api/v1/actions?kind=retry", &key).await;
        let a = list["items"][0].clone();
        (a["callback"]["status"] == "DELIVERED").then_some(a)
    })
    .await;
    assert_eq!(action["id"], command.action_id.to_string());
    assert_eq!(action["callback"]["tries"], 1);
    assert_eq!(action["callback"]["last_status_code"], 200);
    assert!(action["callback"]["delivered_at"].is_string());
    let (_, incident) = sys
        .get(&format!("/api/v1/incidents/{}", command.incident_id), &key)
        .await;
    assert_eq!(incident["actions"][0]["callback"]["status"], "DELIVERED");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.got().len(), 1, "delivered once");
    assert!(
        others.got().is_empty(),
        "another tenant's callback got nothing"
    );
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}

trait ReplaceFirst {
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

#[tokio::test]
async fn a_failed_try_is_tried_again_with_the_same_id_no_sooner_than_retry_after() {
    let (sys, rules) = start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[(500, Some("2"))]).await;
    let secret = register(&sys, &key, "checkout", &receiver.url).await;
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("order-2-charge-1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let got = receiver.wait_for(2).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(got[0].body, got[1].body);
    for r in &got {
        verify(&secret, r).unwrap();
    }
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(1900),
        "Retry-After: 2 honoured: {:?}",
        got[1].at - got[0].at
    );
    let action = Uuid::parse_str(
        got[0]
            .header("webhook-id")
            .split(':')
            .nth(1)
            .expect("retry:<action>:<attempt>"),
    )
    .unwrap();
    let recorded = eventually(WAIT, "the delivery recorded", || async {
        delivery(&sys, action).await.filter(|d| d.0 == "DELIVERED")
    })
    .await;
    assert_eq!(recorded, ("DELIVERED".to_owned(), 2, Some(200)));
    let tries: Vec<(i32, Option<i32>, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT t.try, t.status_code, t.outcome, t.started_at FROM callback_tries t
         JOIN callback_deliveries d ON d.id = t.delivery_id WHERE d.action_id = $1 ORDER BY t.try",
    )
    .bind(action)
    .fetch_all(sys.ctx.store.pool())
    .await
    .unwrap();
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert_eq!((tries[0].1, tries[0].2.as_str()), (Some(500), "retried"));
    assert_eq!((tries[1].1, tries[1].2.as_str()), (Some(200), "delivered"));
    assert!(
        tries[1].3 - tries[0].3 >= chrono::Duration::seconds(2),
        "the second try started 2 s after the first at the earliest: {tries:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.got().len(), 2, "nothing more once delivered");
    let metrics = sys.ctx.metrics.render();
    assert!(
        metrics.contains("awfdrs_callback_deliveries_total{outcome=\"retried\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("awfdrs_callback_deliveries_total{outcome=\"delivered\"} 1"));
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}

#[tokio::test]
async fn a_second_put_rotates_the_secret_and_a_removed_callback_gets_nothing() {
    let (sys, rules) = start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[]).await;
    let first = register(&sys, &key, "checkout", &receiver.url).await;
    let second = register(&sys, &key, "checkout", &receiver.url).await;
    assert_ne!(first, second, "a new secret");
    register(&sys, &key, "payouts", &receiver.url).await;
    assert_eq!(delete_callback(&sys, &key, "payouts").await, 204);
    assert_eq!(delete_callback(&sys, &key, "payouts").await, 404);

    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{}.commands.>", sys.ns().as_str()))
        .await
        .unwrap();
    for (k, workflow) in [("p-1", "payouts"), ("c-1", "checkout")] {
        let (status, _) = sys
            .post(
                "/api/v1/events",
                &key,
                &failure(k, workflow, "payment_timeout"),
            )
            .await;
        assert_eq!(status, 202);
    }
    let mut fired = Vec::new();
    while fired.len() < 2 {
        let msg = tokio::time::timeout(WAIT, commands.next())
            .await
            .expect("both retries fired")
            .unwrap();
        let c: RetryCommandV1 = serde_json::from_slice(&msg.payload).unwrap();
        fired.push(c);
    }
    let got = receiver.wait_for(1).await;
    let checkout = fired.iter().find(|c| c.workflow_id == "checkout").unwrap();
    assert_eq!(got[0].header("webhook-id"), checkout.msg_id());
    verify(&second, &got[0]).expect("signed with the rotated secret");
    assert!(verify(&first, &got[0]).is_err(), "not with the old one");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.got().len(), 1, "the removed callback got nothing");
    let payouts = fired.iter().find(|c| c.workflow_id == "payouts").unwrap();
    assert_eq!(delivery(&sys, payouts.action_id).await, None);
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}

#[tokio::test]
async fn bad_urls_workflows_and_keys_are_refused() {
    let sys = System::start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let long = format!("http://127.0.0.1/{}", "a".repeat(3000));
    for url in [
        json!("http://127.0.0.1/hook\u{0}"),
        json!("http://127.0.0.1/hook\r\nX-Injected: 1"),
        json!("http://127.0.0.1/a\tb"),
        json!(long),
        json!("ftp://127.0.0.1/hook"),
        json!("http://user:pw@127.0.0.1/hook"),
        json!("/relative"),
        json!(""),
        json!(42),
    ] {
        let (status, body) = put_callback(&sys, &key, "checkout", &url).await;
        if url.is_string() {
            assert_eq!(status, 422, "{url}: {body}");
            assert_eq!(body["errors"][0]["field"], "url", "{body}");
        } else {
            assert_eq!(status, 400, "a body of the wrong shape: {body}");
        }
    }
    let (status, body) = put_callback(&sys, &key, "Not_A_Slug", &json!("http://127.0.0.1/")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "workflow_id");

    let admin = awfdrs_domain::new_api_key();
    sys.ctx.store.create_admin_key("ops", &admin).await.unwrap();
    let (status, _) = put_callback(&sys, &admin, "checkout", &json!("http://127.0.0.1/")).await;
    assert_eq!(status, 403);
    assert_eq!(delete_callback(&sys, &admin, "checkout").await, 403);
    assert_eq!(delete_callback(&sys, &key, "checkout").await, 404);
    sys.stop().await;
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let sys = System::start(&[("AWFDRS__NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "false")]).await;
    let (tenant, key) = sys.tenant("acme").await;
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ] {
        let (status, body) = put_callback(&sys, &key, "checkout", &json!(url)).await;
        assert_eq!(status, 422, "{url}: {body}");
        let reason = body["errors"][0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("not allowed"), "{url}: {body}");
    }
    assert!(
        sys.ctx
            .store
            .callback(tenant.id, "checkout")
            .await
            .unwrap()
            .is_none()
    );
    sys.stop().await;

    let allowed = System::start(&[]).await;
    let (_, key) = allowed.tenant("acme").await;
    register(&allowed, &key, "checkout", "http://127.0.0.1:9000/hook").await;
    allowed.stop().await;
}

#[tokio::test]
async fn a_private_address_is_refused_again_at_delivery() {
    // A URL that passed at registration but whose host now resolves to a
    // loopback address (the registration is written straight to the store,
    // as a name rebound after its check would be) is not connected to.
    let (sys, rules) = start(&[
        ("AWFDRS__NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "false"),
        ("AWFDRS__SCHEDULER__CALLBACK_MAX_TRIES", "1"),
    ])
    .await;
    let (tenant, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[]).await;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    sys.ctx
        .store
        .set_callback(
            tenant.id,
            "checkout",
            &by_name,
            &awfdrs_domain::webhook::new_secret(),
        )
        .await
        .unwrap();
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("order-3-charge-1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let (state, error): (String, Option<String>) =
        eventually(WAIT, "the delivery given up", || async {
            sqlx::query_as::<_, (String, Option<String>)>(
                "SELECT status, last_error FROM callback_deliveries WHERE status <> 'PENDING'",
            )
            .fetch_optional(sys.ctx.store.pool())
            .await
            .unwrap()
        })
        .await;
    assert_eq!(state, "FAILED");
    let error = error.unwrap_or_default();
    assert!(error.contains("not allowed"), "{error}");
    assert!(error.contains("gave up after 1 try"), "{error}");
    assert!(receiver.got().is_empty(), "nothing reached the receiver");
    let (_, list) = sys.get("/api/v1/actions?kind=retry", &key).await;
    assert_eq!(list["items"][0]["callback"]["status"], "FAILED");
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}

#[tokio::test]
async fn the_cli_sets_and_removes_a_callback() {
    let sys = System::start(&[]).await;
    let (tenant, _) = sys.tenant("acme").await;
    let out = awfdrs_tests::cli(
        &sys.world,
        &[
            "callbacks",
            "set",
            "checkout",
            "http://127.0.0.1:9000/hook",
            "--tenant",
            "acme",
        ],
    )
    .await;
    let secret = out.trim();
    assert!(secret.starts_with("whsec_"), "{out}");
    let set = sys.ctx.store.callback(tenant.id, "checkout").await.unwrap();
    assert_eq!(set.unwrap().url, "http://127.0.0.1:9000/hook");
    let out = awfdrs_tests::cli(
        &sys.world,
        &["callbacks", "remove", "checkout", "--tenant", "acme"],
    )
    .await;
    assert!(out.contains("removed"), "{out}");
    assert!(
        sys.ctx
            .store
            .callback(tenant.id, "checkout")
            .await
            .unwrap()
            .is_none()
    );

    // Refused: removing what is not there, and a URL with a newline.
    for args in [
        vec!["callbacks", "remove", "checkout", "--tenant", "acme"],
        vec![
            "callbacks",
            "set",
            "checkout",
            "http://127.0.0.1/\nx",
            "--tenant",
            "acme",
        ],
        vec![
            "callbacks",
            "set",
            "checkout",
            "http://127.0.0.1/",
            "--tenant",
            "nobody",
        ],
    ] {
        let out = tokio::process::Command::new(awfdrs_tests::awfdrs_bin())
            .args(&args)
            .env_clear()
            .envs(sys.world.env(&[]))
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "awfdrs {args:?} succeeded");
    }
    assert!(
        sys.ctx
            .store
            .callback(tenant.id, "checkout")
            .await
            .unwrap()
            .is_none()
    );
    sys.stop().await;
}
