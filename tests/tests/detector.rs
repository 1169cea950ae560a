//! The detector against real NATS and PostgreSQL: deduplication across
//! HTTP and NATS, one open incident per signature under competing
//! detectors, tenant isolation, dead letters, auto-resolve and re-open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_bus::{Outgoing, Stage, headers};
use awfdrs_tests::{System, eventually, failure, success};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn nats_event(sys: &System, tenant: &str, event: &Value, msg_id: Option<&str>) -> Outgoing {
    Outgoing {
        subject: sys
            .ns()
            .events_subject(tenant, event["workflow_id"].as_str().unwrap()),
        msg_id: msg_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned),
        correlation_id: None,
        headers: Vec::new(),
        payload: Bytes::from(event.to_string()),
    }
}

/// POSTs one event and expects it accepted.
async fn accept(sys: &System, key: &str, body: Value) {
    let (status, b) = sys.post("/api/v1/events", key, &body).await;
    assert_eq!(status, 202, "{b}");
}

async fn incidents(sys: &System, key: &str) -> Vec<Value> {
    let (status, body) = sys.get("/api/v1/incidents?limit=500", key).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_same_key_through_nats_and_http_is_one_event() {
    let sys = System::start(&[]).await;
    let (tenant, key) = sys.tenant("acme").await;

    // NATS first, then HTTP: the gateway answers with the detector's event.
    let first = failure("via-nats", "checkout", "payment_timeout");
    sys.ctx
        .bus
        .publish(nats_event(&sys, "acme", &first, None))
        .await
        .unwrap();
    eventually(WAIT, "the NATS event persisted", || async {
        (sys.rows("events", tenant.id).await == 1).then_some(())
    })
    .await;
    let (status, body) = sys.post("/api/v1/events", &key, &first).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicate"], true);
    assert_eq!(
        body["event_id"],
        awfdrs_domain::event_id("acme", "via-nats").to_string()
    );

    // HTTP first, then NATS (after the broker's duplicate window would have
    // been irrelevant: a different message id), still one event.
    let second = failure("via-http", "checkout", "payment_timeout");
    let (status, _) = sys.post("/api/v1/events", &key, &second).await;
    assert_eq!(status, 202);
    sys.ctx
        .bus
        .publish(nats_event(&sys, "acme", &second, None))
        .await
        .unwrap();
    eventually(WAIT, "the detector saw both copies", || async {
        (sys.ctx.bus.consumer_backlog(Stage::Detector).await.unwrap() == 0
            && sys.ctx.bus.events_stored().await.unwrap() == 3)
            .then_some(())
    })
    .await;
    assert_eq!(sys.rows("events", tenant.id).await, 2);
    let items = incidents(&sys, &key).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["event_count"], 2);
    sys.stop().await;
}

#[tokio::test]
async fn competing_detectors_keep_one_open_incident_per_signature_with_exact_counts() {
    let sys = System::start_with(&[("AWFDRS__DETECTOR__BATCH_SIZE", "25")], 3).await;
    let (tenant, key) = sys.tenant("acme").await;
    let codes = ["payment_timeout", "card_declined", "vendor_5xx"];
    let mut msgs = Vec::new();
    for i in 0..600 {
        let code = codes[i % 3];
        let e = failure(&format!("e{i}"), "checkout", code);
        msgs.push(nats_event(&sys, "acme", &e, None));
        // Every tenth event is published twice, as a producer retrying would.
        if i % 10 == 0 {
            msgs.push(nats_event(&sys, "acme", &e, None));
        }
    }
    for r in sys.ctx.bus.publish_many(msgs).await {
        r.unwrap();
    }
    eventually(WAIT, "600 events persisted", || async {
        (sys.rows("events", tenant.id).await == 600).then_some(())
    })
    .await;
    eventually(WAIT, "every message settled", || async {
        (sys.ctx.bus.consumer_backlog(Stage::Detector).await.unwrap() == 0).then_some(())
    })
    .await;
    let items = incidents(&sys, &key).await;
    assert_eq!(items.len(), 3, "{items:?}");
    for i in &items {
        assert_eq!(i["event_count"], 200, "{i}");
        assert_eq!(i["status"], "NEW");
    }
    sys.stop().await;
}

#[tokio::test]
async fn a_tenant_cannot_read_another_tenants_incidents() {
    let sys = System::start(&[]).await;
    let (_, a_key) = sys.tenant("acme").await;
    let (_, b_key) = sys.tenant("globex").await;
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &a_key,
            &failure("k", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let id = eventually(WAIT, "acme's incident", || async {
        incidents(&sys, &a_key)
            .await
            .first()
            .map(|i| i["id"].as_str().unwrap().to_owned())
    })
    .await;

    let (status, body) = sys.get(&format!("/api/v1/incidents/{id}"), &a_key).await;
    assert_eq!(status, 200);
    assert_eq!(body["timeline"][0]["to_status"], "NEW");
    assert!(body["decisions"].is_array() && body["actions"].is_array());

    assert!(incidents(&sys, &b_key).await.is_empty());
    let (status, body) = sys.get(&format!("/api/v1/incidents/{id}"), &b_key).await;
    assert_eq!(status, 404, "{body}");
    sys.stop().await;
}

#[tokio::test]
async fn unprocessable_nats_messages_are_dead_lettered_with_their_reason() {
    let sys = System::start(&[]).await;
    let (tenant, _) = sys.tenant("acme").await;
    let mut dlq = sys
        .ctx
        .bus
        .subscribe(sys.ns().dlq(Stage::Detector))
        .await
        .unwrap();
    let ns = sys.ns().clone();
    let cases: Vec<(String, Bytes, &str)> = vec![
        (
            ns.events_subject("acme", "checkout"),
            Bytes::from_static(b"{oops"),
            "malformed JSON",
        ),
        (
            ns.events_subject("acme", "checkout"),
            Bytes::from(json!({"idempotency_key": "x", "workflow_id": "checkout"}).to_string()),
            "event_type: required",
        ),
        (
            ns.events_subject("nobody", "checkout"),
            Bytes::from(failure("y", "checkout", "x").to_string()),
            "unknown tenant",
        ),
        (
            ns.events_subject("acme", "payouts"),
            Bytes::from(failure("z", "checkout", "x").to_string()),
            "does not match the subject",
        ),
    ];
    for (subject, payload, _) in &cases {
        sys.ctx
            .bus
            .publish(Outgoing {
                subject: subject.clone(),
                msg_id: uuid::Uuid::new_v4().to_string(),
                correlation_id: Some("corr-dlq".into()),
                headers: Vec::new(),
                payload: payload.clone(),
            })
            .await
            .unwrap();
    }
    let mut reasons = Vec::new();
    for _ in &cases {
        let m = tokio::time::timeout(WAIT, dlq.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.header(headers::CORRELATION_ID), Some("corr-dlq"));
        assert!(m.header(headers::DLQ_SUBJECT).is_some());
        reasons.push((
            m.header(headers::DLQ_REASON).unwrap().to_owned(),
            m.payload.clone(),
        ));
    }
    for (_, payload, expected) in &cases {
        let (reason, _) = reasons
            .iter()
            .find(|(_, p)| p == payload)
            .unwrap_or_else(|| panic!("no dead letter for {payload:?}"));
        assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
    }
    // Terminated, not redelivered: the consumer has nothing pending.
    eventually(WAIT, "the consumer settled", || async {
        (sys.ctx.bus.consumer_backlog(Stage::Detector).await.unwrap() == 0).then_some(())
    })
    .await;
    assert_eq!(sys.rows("events", tenant.id).await, 0);
    let metrics = sys.ctx.metrics.render();
    assert!(
        metrics.contains("awfdrs_messages_dead_lettered_total"),
        "{metrics}"
    );
    sys.stop().await;
}

#[tokio::test]
async fn successes_of_the_step_resolve_and_a_failure_within_the_window_reopens() {
    let sys = System::start(&[
        ("AWFDRS__DETECTOR__AUTO_RESOLVE_SUCCESSES", "2"),
        ("AWFDRS__DETECTOR__REOPEN_WINDOW_SECS", "3600"),
    ])
    .await;
    let (_, key) = sys.tenant("acme").await;
    accept(&sys, &key, failure("f1", "checkout", "payment_timeout")).await;
    let id = eventually(WAIT, "the incident", || async {
        incidents(&sys, &key).await.first().map(|i| i["id"].clone())
    })
    .await;
    // Successes strictly after the failure.
    tokio::time::sleep(Duration::from_millis(5)).await;
    accept(&sys, &key, success("s1", "checkout")).await;
    accept(&sys, &key, success("s2", "checkout")).await;
    eventually(WAIT, "auto-resolve", || async {
        let items = incidents(&sys, &key).await;
        (items[0]["status"] == "RESOLVED").then_some(())
    })
    .await;

    accept(&sys, &key, failure("f2", "checkout", "payment_timeout")).await;
    eventually(WAIT, "the re-opened incident", || async {
        let items = incidents(&sys, &key).await;
        (items.len() == 1 && items[0]["status"] == "NEW" && items[0]["event_count"] == 2)
            .then_some(())
    })
    .await;
    let (_, detail) = sys
        .get(&format!("/api/v1/incidents/{}", id.as_str().unwrap()), &key)
        .await;
    let steps: Vec<(Value, Value)> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["to_status"].clone(), t["actor"].clone()))
        .collect();
    assert_eq!(
        steps,
        [
            (json!("NEW"), json!("detector")),
            (json!("RESOLVED"), json!("auto-resolve")),
            (json!("NEW"), json!("detector")),
        ]
    );
    sys.stop().await;
}

#[tokio::test]
async fn events_are_append_only() {
    let sys = System::start(&[]).await;
    let (tenant, key) = sys.tenant("acme").await;
    let (status, _) = sys
        .post("/api/v1/events", &key, &failure("k", "checkout", "x"))
        .await;
    assert_eq!(status, 202);
    eventually(WAIT, "the event persisted", || async {
        (sys.rows("events", tenant.id).await == 1).then_some(())
    })
    .await;
    let pool = sys.ctx.store.pool();
    for sql in [
        "UPDATE events SET workflow_id = 'other'",
        "DELETE FROM events",
        "TRUNCATE events CASCADE",
    ] {
        let err = sqlx::query(sql).execute(pool).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(sys.rows("events", tenant.id).await, 1);
    sys.stop().await;
}

#[tokio::test]
async fn a_code_with_open_after_opens_its_incident_only_at_the_nth_failure() {
    // config/rules/error_codes.yaml: gateway_timeout opens after 3 in 5m.
    let sys = System::start(&[]).await;
    let (tenant, key) = sys.tenant("acme").await;
    for i in 0..2 {
        let (status, _) = sys
            .post(
                "/api/v1/events",
                &key,
                &failure(&format!("g{i}"), "checkout", "gateway_timeout"),
            )
            .await;
        assert_eq!(status, 202);
    }
    eventually(WAIT, "two failures persisted", || async {
        (sys.rows("events", tenant.id).await == 2).then_some(())
    })
    .await;
    assert!(
        incidents(&sys, &key).await.is_empty(),
        "opened before the third failure"
    );
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("g2", "checkout", "gateway_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let items = eventually(WAIT, "the incident", || async {
        let items = incidents(&sys, &key).await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["event_count"], 3, "the held-back failures count");
    sys.stop().await;
}

#[tokio::test]
async fn a_gated_incident_reopened_after_resolution_counts_each_failure_once() {
    let sys = System::start(&[
        ("AWFDRS__DETECTOR__AUTO_RESOLVE_SUCCESSES", "2"),
        ("AWFDRS__DETECTOR__REOPEN_WINDOW_SECS", "3600"),
    ])
    .await;
    let (_, key) = sys.tenant("acme").await;
    // gateway_timeout opens after 3 failures in 5 minutes.
    for i in 0..3 {
        accept(
            &sys,
            &key,
            failure(&format!("g{i}"), "checkout", "gateway_timeout"),
        )
        .await;
    }
    eventually(WAIT, "the incident with 3 failures", || async {
        let items = incidents(&sys, &key).await;
        (items.len() == 1 && items[0]["event_count"] == 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    accept(&sys, &key, success("s1", "checkout")).await;
    accept(&sys, &key, success("s2", "checkout")).await;
    eventually(WAIT, "auto-resolve", || async {
        (incidents(&sys, &key).await[0]["status"] == "RESOLVED").then_some(())
    })
    .await;
    accept(&sys, &key, failure("g3", "checkout", "gateway_timeout")).await;
    eventually(WAIT, "the re-opened incident", || async {
        let items = incidents(&sys, &key).await;
        (items[0]["status"] == "NEW").then_some(())
    })
    .await;
    let items = incidents(&sys, &key).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["event_count"], 4, "{}", items[0]);
    sys.stop().await;
}
