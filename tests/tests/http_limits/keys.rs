//! Keys and signatures: the bearer scheme, signatures that say nothing
//! about tenants, keys rotated and revoked, and what a tenant's key sees.

use std::time::Duration;

use awfdrs_domain::webhook;
use awfdrs_tests::{System, awfdrs_bin, eventually, failure, read_answer};
use serde_json::{Value, json};

use crate::{WAIT, assert_problem};

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
