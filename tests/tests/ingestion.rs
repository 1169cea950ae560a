//! The HTTP ingestion contract: every status code, and nothing persisted or
//! published for a rejected request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_tests::{System, eventually, failure};
use serde_json::json;

async fn assert_nothing_accepted(sys: &System, tenant: uuid::Uuid) {
    assert_eq!(
        sys.rows("ingest_keys", tenant).await,
        0,
        "a key was reserved"
    );
    assert_eq!(
        sys.rows("events", tenant).await,
        0,
        "an event was persisted"
    );
    assert_eq!(
        sys.ctx.bus.events_stored().await.unwrap(),
        0,
        "an event was published"
    );
}

#[tokio::test]
async fn rejected_requests_get_their_status_and_leave_nothing_behind() {
    let sys = System::start(&[]).await;
    let (tenant, key) = sys.tenant("acme").await;

    // 401: no key, a malformed header, an unknown key.
    let (status, body) = sys
        .post_raw(
            "/api/v1/events",
            None,
            failure("k", "checkout", "x").to_string().into(),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["status"], 401);
    let (status, _) = sys
        .post(
            "/api/v1/events",
            "awf_not_a_key",
            &failure("k", "checkout", "x"),
        )
        .await;
    assert_eq!(status, 401);

    // 400: not JSON.
    let (status, body) = sys
        .post_raw(
            "/api/v1/events",
            Some(&key),
            b"{\"idempotency_key\": ".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["type"], "/problems/malformed-request");

    // 422: every invalid field named.
    let bad = json!({
        "idempotency_key": "",
        "workflow_id": "Not A Slug",
        "event_type": "step_failed",
        "occurred_at": "2999-01-01T00:00:00Z",
        "error": {"message": "no code"},
        "attempt": 0,
        "metadata": "not an object"
    });
    let (status, body) = sys.post("/api/v1/events", &key, &bad).await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "idempotency_key",
        "workflow_id",
        "occurred_at",
        "error.code",
        "attempt",
        "metadata",
    ] {
        assert!(fields.contains(&f), "{f} not named in {fields:?}");
    }

    // 413: a body over 256 KiB.
    let mut huge = failure("big", "checkout", "x");
    huge["error"]["message"] = json!("x".repeat(300 * 1024));
    let (status, body) = sys.post("/api/v1/events", &key, &huge).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["type"], "/problems/body-too-large");

    // 422 for a batch that is too big, and per-item 422 inside a batch.
    let items: Vec<_> = (0..501)
        .map(|i| failure(&format!("b{i}"), "checkout", "x"))
        .collect();
    let (status, _) = sys.post("/api/v1/events/batch", &key, &json!(items)).await;
    assert_eq!(status, 422);

    assert_nothing_accepted(&sys, tenant.id).await;
    sys.stop().await;
}

#[tokio::test]
async fn accepted_events_are_published_once_and_duplicates_answer_with_the_first_id() {
    let sys = System::start(&[]).await;
    let (tenant, key) = sys.tenant("acme").await;
    let event = failure("order-1", "checkout", "payment_timeout");

    let resp = sys
        .http
        .post(format!("{}/api/v1/events", sys.base))
        .bearer_auth(&key)
        .header("X-Correlation-ID", "corr-123")
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let first: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["correlation_id"], "corr-123");
    let id = first["event_id"].as_str().unwrap().to_owned();

    // Same key, same body: 200 with the first id, before and after the
    // detector has persisted it.
    let (status, again) = sys.post("/api/v1/events", &key, &event).await;
    assert_eq!(status, 200);
    assert_eq!(again["event_id"], id.as_str());
    assert_eq!(again["duplicate"], true);

    eventually(Duration::from_secs(20), "the event persisted", || async {
        (sys.rows("events", tenant.id).await == 1).then_some(())
    })
    .await;
    let (status, again) = sys.post("/api/v1/events", &key, &event).await;
    assert_eq!(
        (status, again["event_id"].as_str()),
        (200, Some(id.as_str()))
    );

    // Same key, different body: 409.
    let mut changed = event.clone();
    changed["error"]["code"] = json!("card_declined");
    let (status, body) = sys.post("/api/v1/events", &key, &changed).await;
    assert_eq!(status, 409, "{body}");

    // One event row, published once, its correlation id kept.
    assert_eq!(sys.rows("events", tenant.id).await, 1);
    assert_eq!(sys.ctx.bus.events_stored().await.unwrap(), 1);
    let corr: String = sqlx::query_scalar("SELECT correlation_id FROM events WHERE tenant_id = $1")
        .bind(tenant.id)
        .fetch_one(sys.ctx.store.pool())
        .await
        .unwrap();
    assert_eq!(corr, "corr-123");
    sys.stop().await;
}

#[tokio::test]
async fn a_batch_answers_per_item() {
    let sys = System::start(&[]).await;
    let (tenant, key) = sys.tenant("acme").await;
    let a = failure("a", "checkout", "payment_timeout");
    let (status, _) = sys.post("/api/v1/events", &key, &a).await;
    assert_eq!(status, 202);

    let mut a_changed = a.clone();
    a_changed["step"] = json!("refund");
    let b = failure("b", "checkout", "payment_timeout");
    let batch = json!({"events": [b, a.clone(), a_changed, {"idempotency_key": "c"}, b]});
    let (status, body) = sys.post("/api/v1/events/batch", &key, &batch).await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 200, 409, 422, 200]);
    assert_eq!(
        body["results"][3]["error"]["errors"][0]["field"],
        "workflow_id"
    );

    eventually(Duration::from_secs(20), "two events persisted", || async {
        (sys.rows("events", tenant.id).await == 2).then_some(())
    })
    .await;
    assert_eq!(sys.ctx.bus.events_stored().await.unwrap(), 2);
    sys.stop().await;
}

#[tokio::test]
async fn the_tenant_ingress_limit_answers_429_with_retry_after() {
    let sys = System::start(&[
        ("AWFDRS__INGRESS__PER_TENANT_PER_SECOND", "1"),
        ("AWFDRS__INGRESS__BURST", "2"),
    ])
    .await;
    let (tenant, key) = sys.tenant("acme").await;
    let (_, other_key) = sys.tenant("globex").await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..3 {
        let resp = sys
            .http
            .post(format!("{}/api/v1/events", sys.base))
            .bearer_auth(&key)
            .json(&failure(&format!("k{i}"), "checkout", "x"))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if let Some(v) = resp.headers().get("retry-after") {
            retry_after = v.to_str().ok().and_then(|v| v.parse::<u64>().ok());
        }
    }
    assert_eq!(statuses, [202, 202, 429]);
    assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After missing");
    // The limit is per tenant: another tenant is not held back.
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &other_key,
            &failure("k0", "checkout", "x"),
        )
        .await;
    assert_eq!(status, 202);
    eventually(
        Duration::from_secs(20),
        "the admitted events persisted",
        || async { (sys.rows("events", tenant.id).await == 2).then_some(()) },
    )
    .await;
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, 2);
    sys.stop().await;
}

#[tokio::test]
async fn a_broker_that_cannot_take_the_event_answers_503_and_keeps_nothing() {
    // No detector: its consumer would go with the stream, and a worker
    // whose consumer is deleted stops the process.
    let sys = System::start_with(&[("AWFDRS__NATS__PUBLISH_TIMEOUT_MS", "1000")], 0).await;
    let (tenant, key) = sys.tenant("acme").await;
    // Without its stream, JetStream has nowhere to store the event.
    sys.ctx.bus.delete_streams().await.unwrap();
    let event = failure("k1", "checkout", "x");
    let (status, body) = sys.post("/api/v1/events", &key, &event).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, 0);

    // Once the broker is back, the same request is accepted (not a duplicate).
    sys.ctx.bus.declare_streams().await.unwrap();
    let (status, body) = sys.post("/api/v1/events", &key, &event).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, 1);
    sys.stop().await;
}

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let sys = System::start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    sys.post("/api/v1/events", &key, &json!({})).await;
    for path in ["/api/v1/health", "/api/v1/ready"] {
        let r = sys
            .http
            .get(format!("{}{path}", sys.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    let text = sys
        .http
        .get(format!("{}/metrics", sys.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("awfdrs_events_rejected_total{source=\"http\",reason=\"invalid_fields\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("awfdrs_http_request_seconds_bucket"),
        "{text}"
    );
    sys.stop().await;
}

#[tokio::test]
async fn signed_webhooks_are_accepted_and_bad_signatures_refused() {
    use awfdrs_domain::webhook;
    let sys = System::start(&[]).await;
    let (tenant, _) = sys.tenant("acme").await;
    let secret = webhook::new_secret();
    sys.ctx
        .store
        .set_webhook_secret("acme", &secret)
        .await
        .unwrap();
    let body = failure("signed-1", "checkout", "payment_timeout").to_string();
    let now = chrono::Utc::now().timestamp();
    let send = |sig: String, ts: i64, tenant: &'static str| {
        sys.http
            .post(format!("{}/api/v1/events", sys.base))
            .header("content-type", "application/json")
            .header("x-awfdrs-tenant", tenant)
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body.clone())
            .send()
    };
    let good = webhook::sign(&secret, "msg_1", now, body.as_bytes()).unwrap();
    let old = webhook::sign(&secret, "msg_1", now - 600, body.as_bytes()).unwrap();
    let other = webhook::sign(&webhook::new_secret(), "msg_1", now, body.as_bytes()).unwrap();
    assert_eq!(
        send(other, now, "acme").await.unwrap().status().as_u16(),
        401
    );
    assert_eq!(
        send(old, now - 600, "acme")
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        send(good.clone(), now, "globex")
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, 0);
    assert_eq!(
        send(good, now, "acme").await.unwrap().status().as_u16(),
        202
    );
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, 1);
    sys.stop().await;
}

#[tokio::test]
async fn an_admin_key_sees_every_tenant_but_cannot_ingest() {
    let sys = System::start(&[]).await;
    let (_, a) = sys.tenant("acme").await;
    let (_, b) = sys.tenant("globex").await;
    let admin = awfdrs_domain::new_api_key();
    sys.ctx.store.create_admin_key("ops", &admin).await.unwrap();
    for key in [&a, &b] {
        let (status, _) = sys
            .post("/api/v1/events", key, &failure("k", "checkout", "x"))
            .await;
        assert_eq!(status, 202);
    }
    let (status, _) = sys
        .post("/api/v1/events", &admin, &failure("k2", "checkout", "x"))
        .await;
    assert_eq!(status, 401);
    eventually(
        Duration::from_secs(20),
        "both tenants' incidents",
        || async {
            let (status, body) = sys.get("/api/v1/incidents", &admin).await;
            assert_eq!(status, 200);
            (body["items"].as_array().unwrap().len() == 2).then_some(())
        },
    )
    .await;
    sys.stop().await;
}
