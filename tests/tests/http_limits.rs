//! Slow, unauthenticated and malformed clients against the real gateway:
//! timeouts close what stalls, bodies are not read before authentication,
//! every error is a problem, keys can be rotated and revoked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_domain::webhook;
use awfdrs_tests::{System, awfdrs_bin, closed_within, eventually, failure, read_answer};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

/// How long a test waits for something that should happen at once or
/// after a timeout of a few hundred milliseconds.
const WAIT: Duration = Duration::from_secs(10);

const SHORT_TIMEOUTS: &[(&str, &str)] = &[
    ("AWFDRS__HTTP__HEADER_READ_TIMEOUT_MS", "300"),
    ("AWFDRS__HTTP__BODY_READ_TIMEOUT_MS", "300"),
    ("AWFDRS__HTTP__IDLE_TIMEOUT_MS", "600"),
];

fn assert_problem(answer: &awfdrs_tests::RawAnswer, status: u16) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/problem+json"),
        "{answer:?}"
    );
    assert_eq!(answer.json()["status"], status, "{answer:?}");
}

#[tokio::test]
async fn a_connection_that_stalls_in_its_headers_or_idles_is_closed() {
    let sys = System::start(SHORT_TIMEOUTS).await;
    // Slowloris: part of a request head, then nothing.
    let mut slow = sys
        .raw("POST /api/v1/events HTTP/1.1\r\nHost: x\r\nX-A: ")
        .await;
    // Half a head, and then a byte every 100 ms: still closed, since the
    // timeout runs from the request's first byte.
    let mut dribble = sys.raw("GET /api/v1/health HTTP/1.1\r\n").await;
    let dribbler = tokio::spawn(async move {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if dribble.write_all(b"X").await.is_err() {
                return true;
            }
        }
        false
    });
    // A connection that never sends anything.
    let mut silent = sys.raw("").await;
    // A keep-alive connection after a whole request.
    let mut idle = sys
        .raw("GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let first = read_answer(&mut idle, WAIT).await.expect("an answer");
    assert_eq!(first.status, 200);

    assert!(closed_within(&mut slow, WAIT).await, "slow head kept open");
    assert!(closed_within(&mut silent, WAIT).await, "silent kept open");
    assert!(closed_within(&mut idle, WAIT).await, "idle kept open");
    assert!(dribbler.await.unwrap(), "dribbled head kept open");
    sys.stop().await;
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_and_its_connection_closed() {
    let sys = System::start(SHORT_TIMEOUTS).await;
    let (_, key) = sys.tenant("acme").await;
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"idem"
    );
    let mut conn = sys.raw(&head).await;
    let answer = read_answer(&mut conn, WAIT).await.expect("an answer");
    assert_problem(&answer, 408);
    assert!(closed_within(&mut conn, WAIT).await);
    sys.stop().await;
}

#[tokio::test]
async fn a_request_without_credentials_is_refused_before_its_body_is_read() {
    let sys = System::start(&[]).await;
    let (tenant, _) = sys.tenant("acme").await;
    for (path, auth) in [
        ("/api/v1/events/batch", ""),
        ("/api/v1/events", ""),
        (
            "/api/v1/events/batch",
            "Authorization: Bearer awf_unknown\r\n",
        ),
        ("/api/v1/events/batch", "Authorization: Basic YTpi\r\n"),
    ] {
        // 8 MiB announced, 1 KiB sent: the answer comes while the client
        // holds the rest.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: 8388608\r\n\r\n[{}",
            " ".repeat(1024)
        );
        let mut conn = sys.raw(&head).await;
        let answer = read_answer(&mut conn, WAIT)
            .await
            .unwrap_or_else(|| panic!("no answer to {path} {auth:?} before the body was sent"));
        assert_problem(&answer, 401);
    }
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, 0);
    sys.stop().await;
}

fn signed_head(path: &str, tenant: &str, ts: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Awfdrs-Tenant: {tenant}\r\nwebhook-id: msg_1\r\nwebhook-timestamp: {ts}\r\n\
         webhook-signature: v1,AAAA\r\n{extra}Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn signed_bodies_are_bounded_in_size_and_in_number() {
    let sys = System::start(&[("AWFDRS__HTTP__MAX_UNAUTHENTICATED_BODIES", "1")]).await;
    let now = chrono::Utc::now().timestamp().to_string();
    // A signed batch above the webhook cap (1 MiB), far below the bearer
    // batch limit (8 MiB): refused before it is read.
    let mut big = sys
        .raw(&signed_head(
            "/api/v1/events/batch",
            "acme",
            &now,
            2 << 20,
            "",
        ))
        .await;
    let answer = read_answer(&mut big, WAIT).await.expect("an answer");
    assert_problem(&answer, 413);

    // One stalled signed upload holds the only slot; the next signed
    // request is turned away without its body being read.
    let _stalled = sys
        .raw(&signed_head("/api/v1/events", "acme", &now, 10_000, ""))
        .await;
    let answer = eventually(WAIT, "a 503 while the slot is taken", || async {
        let mut conn = sys
            .raw(&signed_head("/api/v1/events", "acme", &now, 100_000, ""))
            .await;
        let answer = read_answer(&mut conn, WAIT).await?;
        (answer.status == 503).then_some(answer)
    })
    .await;
    assert_problem(&answer, 503);
    assert!(answer.header("retry-after").is_some(), "{answer:?}");
    sys.stop().await;
}

#[tokio::test]
async fn every_error_answer_is_a_problem() {
    let sys = System::start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let cases = [
        ("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(), 404),
        (
            format!(
                "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
            ),
            405,
        ),
        (
            format!(
                "GET /api/v1/incidents?workflow_id={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(10_000)
            ),
            414,
        ),
        (
            format!(
                "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(20_000)
            ),
            431,
        ),
        (
            format!(
                "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Content-Length: 300000\r\n\r\n"
            ),
            413,
        ),
    ];
    for (request, status) in cases {
        let mut conn = sys.raw(&request).await;
        let answer = read_answer(&mut conn, WAIT)
            .await
            .unwrap_or_else(|| panic!("no answer for {status}"));
        assert_problem(&answer, status);
    }
    sys.stop().await;
}

#[tokio::test]
async fn garbage_query_parameters_and_cursors_are_client_errors() {
    let sys = System::start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let far = |micros: i64| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{micros}|{}", uuid::Uuid::nil()))
    };
    let cases = [
        "workflow_id=%00".to_owned(),
        "vendor=stri%00pe".to_owned(),
        "status=NEW%00".to_owned(),
        "limit=abc".to_owned(),
        "limit=99999999999999999999".to_owned(),
        "cursor=%00".to_owned(),
        "cursor=not-base64!".to_owned(),
        format!("cursor={}", far(i64::MIN)),
        format!("cursor={}", far(-8_000_000_000_000_000_000)),
        format!("cursor={}", far(8_000_000_000_000_000_000)),
        "nonsense=1".to_owned(),
    ];
    for query in cases {
        let resp = sys
            .http
            .get(format!("{}/api/v1/incidents?{query}", sys.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(status == 400 || status == 422, "{query}: {status}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"), "{query}");
    }
    let (status, _) = sys.get("/api/v1/incidents/%00", &key).await;
    assert_eq!(status, 404);
    sys.stop().await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_one_header_is_allowed() {
    let sys = System::start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let (_, other) = sys.tenant("globex").await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let resp = sys
            .http
            .get(format!("{}/api/v1/incidents", sys.base))
            .header("authorization", format!("{scheme} {key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{scheme}");
    }
    let resp = sys
        .http
        .post(format!("{}/api/v1/events", sys.base))
        .header("authorization", format!("bearer {key}"))
        .json(&failure("lower", "checkout", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);

    for path in ["/api/v1/incidents", "/api/v1/events"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Authorization: Bearer {other}\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        let head = if path == "/api/v1/incidents" {
            head.replacen("POST", "GET", 1)
        } else {
            head
        };
        let mut conn = sys.raw(&head).await;
        let answer = read_answer(&mut conn, WAIT).await.expect("an answer");
        assert_problem(&answer, 400);
    }
    sys.stop().await;
}

async fn post_signed(
    sys: &System,
    body: &str,
    tenant: &str,
    ts: &str,
    sig: &str,
    bearer: Option<&str>,
) -> (u16, Value) {
    let mut req = sys
        .http
        .post(format!("{}/api/v1/events", sys.base))
        .header("content-type", "application/json")
        .header("x-awfdrs-tenant", tenant)
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", ts)
        .header("webhook-signature", sig)
        .body(body.to_owned());
    if let Some(k) = bearer {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn signatures_say_nothing_about_tenants_and_cannot_be_mixed_with_another_key() {
    let sys = System::start(&[]).await;
    let (a, _) = sys.tenant("acme").await;
    let (b, b_key) = sys.tenant("globex").await;
    let (_, _) = sys.tenant("initech").await; // no webhook secret
    let secret = webhook::new_secret();
    sys.ctx
        .store
        .set_webhook_secret("acme", &secret)
        .await
        .unwrap();
    let body = failure("signed-1", "checkout", "payment_timeout").to_string();
    let now = chrono::Utc::now().timestamp();
    let good = webhook::sign(&secret, "msg_1", now, body.as_bytes()).unwrap();
    let ts = now.to_string();

    // Signed for acme, with globex's key: refused, nothing stored for either.
    let (status, _) = post_signed(&sys, &body, "acme", &ts, &good, Some(&b_key)).await;
    assert_eq!(status, 401);
    assert_eq!(sys.rows("ingest_keys", a.id).await, 0);
    assert_eq!(sys.rows("ingest_keys", b.id).await, 0);

    // Unknown tenant, tenant without a secret, wrong signature: one answer.
    let mut details = Vec::new();
    for (tenant, sig) in [
        ("nosuch", good.as_str()),
        ("initech", good.as_str()),
        ("acme", "v1,AAAA"),
    ] {
        let (status, body) = post_signed(&sys, &body, tenant, &ts, sig, None).await;
        assert_eq!(status, 401, "{tenant}");
        details.push(body["detail"].clone());
    }
    assert!(details.windows(2).all(|w| w[0] == w[1]), "{details:?}");

    // Timestamps no arithmetic can hold.
    for ts in ["-9223372036854775808", "9223372036854775807", "1e99"] {
        let (status, body) = post_signed(&sys, &body, "acme", ts, &good, None).await;
        assert_eq!(status, 401, "{ts}: {body}");
    }
    let (status, _) = post_signed(&sys, &body, "acme", &ts, &good, None).await;
    assert_eq!(status, 202);
    sys.stop().await;
}

async fn cli(sys: &System, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(awfdrs_bin())
        .args(args)
        .env_clear()
        .envs(sys.world.env(&[]))
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("run awfdrs")
}

#[tokio::test]
async fn rotating_or_revoking_a_key_takes_effect_at_once() {
    let sys = System::start(&[]).await;
    let (_, old) = sys.tenant("acme").await;
    let (status, _) = sys.get("/api/v1/incidents", &old).await;
    assert_eq!(status, 200);

    let out = cli(&sys, &["tenants", "rotate-key", "acme"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let new = stdout.trim_end().to_owned();
    assert!(new.starts_with("awf_") && new != old);
    eventually(Duration::from_secs(3), "the old key refused", || async {
        (sys.get("/api/v1/incidents", &old).await.0 == 401).then_some(())
    })
    .await;
    assert_eq!(sys.get("/api/v1/incidents", &new).await.0, 200);

    let out = cli(&sys, &["tenants", "revoke-key", "acme"]).await;
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    eventually(
        Duration::from_secs(3),
        "the revoked key refused",
        || async { (sys.get("/api/v1/incidents", &new).await.0 == 401).then_some(()) },
    )
    .await;
    let out = cli(&sys, &["tenants", "rotate-key", "nosuch"]).await;
    assert!(!out.status.success());
    sys.stop().await;
}

#[tokio::test]
async fn a_tenant_sees_the_breakers_of_its_own_vendors_and_an_admin_all() {
    let sys = System::start(&[]).await;
    let (a, a_key) = sys.tenant("acme").await;
    let (_, b_key) = sys.tenant("globex").await;
    let (_, c_key) = sys.tenant("initech").await;
    let admin = awfdrs_domain::new_api_key();
    sys.ctx.store.create_admin_key("ops", &admin).await.unwrap();
    let mut e = failure("a1", "checkout", "payment_timeout");
    e["vendor"] = json!("stripe");
    assert_eq!(sys.post("/api/v1/events", &a_key, &e).await.0, 202);
    let mut e = failure("b1", "checkout", "payment_timeout");
    e["vendor"] = json!("twilio");
    assert_eq!(sys.post("/api/v1/events", &b_key, &e).await.0, 202);
    eventually(WAIT, "both events stored", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(sys.ctx.store.pool())
            .await
            .unwrap();
        (n == 2).then_some(())
    })
    .await;
    assert_eq!(
        sys.ctx.store.tenant_vendors(a.id).await.unwrap(),
        ["stripe"]
    );

    let vendors = |body: Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["vendor"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, body) = sys.get("/api/v1/breakers", &a_key).await;
    assert_eq!(status, 200);
    assert_eq!(vendors(body), ["stripe"]);
    let (_, body) = sys.get("/api/v1/breakers", &b_key).await;
    assert_eq!(vendors(body), ["twilio"]);
    let (_, body) = sys.get("/api/v1/breakers", &c_key).await;
    assert!(vendors(body).is_empty());
    let (_, body) = sys.get("/api/v1/breakers", &admin).await;
    let all = vendors(body);
    for v in ["stripe", "twilio", "adyen", "paypal"] {
        assert!(all.iter().any(|a| a == v), "{v} not in {all:?}");
    }
    sys.stop().await;
}

#[tokio::test]
async fn bodies_buffered_at_once_are_bounded_over_every_request() {
    let limit = "262144";
    let sys = System::start(&[
        ("AWFDRS__HTTP__BATCH_BODY_LIMIT_BYTES", limit),
        ("AWFDRS__HTTP__WEBHOOK_BATCH_BODY_LIMIT_BYTES", limit),
        ("AWFDRS__HTTP__MAX_BUFFERED_BODY_BYTES", limit),
    ])
    .await;
    let (_, key) = sys.tenant("acme").await;
    // An authenticated upload that stalls after 200 KiB of its 250 KiB.
    let head = format!(
        "POST /api/v1/events/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 256000\r\n\r\n[{}",
        " ".repeat(200 * 1024)
    );
    let _stalled = sys.raw(&head).await;
    let body = format!("[{}]", " ".repeat(100 * 1024));
    let answer = eventually(WAIT, "a 503 while the budget is spent", || async {
        let (status, body) = sys
            .post_raw("/api/v1/events/batch", Some(&key), body.clone().into())
            .await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(answer["status"], 503, "{answer}");
    sys.stop().await;
}

#[tokio::test]
async fn connections_and_requests_beyond_their_limits_wait_for_a_free_one() {
    let sys = System::start(&[
        ("AWFDRS__HTTP__MAX_CONNECTIONS", "2"),
        ("AWFDRS__HTTP__MAX_CONCURRENT_REQUESTS", "1"),
    ])
    .await;
    let (_, key) = sys.tenant("acme").await;
    let health = "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n";

    // The one request slot: a body still arriving holds it.
    let body = failure("slot", "checkout", "x").to_string();
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut holder = sys.raw(&head).await;
    // The second connection is served, but its request waits for the slot.
    let mut second = sys.raw(health).await;
    assert!(
        read_answer(&mut second, Duration::from_millis(500))
            .await
            .is_none(),
        "a second request ran beside the first"
    );
    // A third connection is not even taken in.
    let mut third = sys.raw(health).await;
    assert!(
        read_answer(&mut third, Duration::from_millis(500))
            .await
            .is_none(),
        "a third connection was served"
    );

    holder.write_all(body.as_bytes()).await.unwrap();
    let answer = read_answer(&mut holder, WAIT).await.expect("an answer");
    assert_eq!(answer.status, 202, "{answer:?}");
    let answer = read_answer(&mut second, WAIT).await.expect("an answer");
    assert_eq!(answer.status, 200);
    drop(holder);
    let answer = read_answer(&mut third, WAIT).await.expect("an answer");
    assert_eq!(answer.status, 200);
    sys.stop().await;
}
