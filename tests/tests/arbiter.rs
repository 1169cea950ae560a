//! One arbiter for idempotency keys across HTTP and NATS, message ids
//! nobody can predict, and ingestion that survives its caller going away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_bus::{Outgoing, Stage, headers};
use awfdrs_tests::{System, eventually, failure};
use bytes::Bytes;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn nats_event(sys: &System, tenant: &str, event: &Value) -> Outgoing {
    Outgoing {
        subject: sys
            .ns()
            .events_subject(tenant, event["workflow_id"].as_str().unwrap()),
        msg_id: uuid::Uuid::new_v4().to_string(),
        correlation_id: None,
        headers: Vec::new(),
        payload: Bytes::from(event.to_string()),
    }
}

/// Waits until the detector has settled everything in the stream.
async fn drained(sys: &System, stored: u64) {
    eventually(WAIT, "the detector settled every message", || async {
        (sys.ctx.bus.consumer_backlog(Stage::Detector).await.unwrap() == 0
            && sys.ctx.bus.events_stored().await.unwrap() == stored)
            .then_some(())
    })
    .await;
}

/// The body hash and source stored for a key.
async fn stored(sys: &System, tenant: uuid::Uuid, key: &str) -> Option<(Vec<u8>, String)> {
    sqlx::query_as(
        "SELECT body_hash, source FROM events WHERE tenant_id = $1 AND idempotency_key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_optional(sys.ctx.store.pool())
    .await
    .unwrap()
}

fn hash(v: &Value) -> Vec<u8> {
    awfdrs_domain::BodyHash::of(v).0.to_vec()
}

#[tokio::test]
async fn a_key_raced_with_two_bodies_over_http_and_nats_stores_one_and_answers_for_it() {
    let sys = System::start(&[]).await;
    let (tenant, key) = sys.tenant("acme").await;
    let mut dlq = sys
        .ctx
        .bus
        .subscribe(sys.ns().dlq(Stage::Detector))
        .await
        .unwrap();
    let races = 30;
    let mut answers = Vec::new();
    for i in 0..races {
        let k = format!("race-{i}");
        let over_http = failure(&k, "checkout", "payment_timeout");
        let mut over_nats = over_http.clone();
        over_nats["step"] = Value::from("refund");
        let (http, nats) = tokio::join!(
            sys.post("/api/v1/events", &key, &over_http),
            sys.ctx.bus.publish(nats_event(&sys, "acme", &over_nats)),
        );
        nats.unwrap();
        answers.push((k, over_http, over_nats, http));
    }
    let published_by_gateway = answers.iter().filter(|a| a.3.0 == 202).count() as u64;
    drained(&sys, races + published_by_gateway).await;

    let mut nats_refused = 0;
    for (k, over_http, over_nats, (status, body)) in &answers {
        let (body_hash, source) = stored(&sys, tenant.id, k).await.expect("one body stored");
        if body_hash == hash(over_http) {
            assert_eq!(
                *status, 202,
                "HTTP's body is stored, so HTTP got 202: {body}"
            );
            assert_eq!(source, "http");
            nats_refused += 1;
        } else {
            assert_eq!(body_hash, hash(over_nats));
            assert_eq!(
                *status, 409,
                "NATS's body is stored, so HTTP got 409: {body}"
            );
            assert_eq!(source, "nats");
        }
    }
    // Every NATS body that lost its key is a dead letter naming the reuse.
    for _ in 0..nats_refused {
        let m = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut dlq))
            .await
            .expect("a dead letter for each refused NATS body")
            .unwrap();
        let reason = m.header(headers::DLQ_REASON).unwrap_or_default();
        assert!(reason.contains("already used"), "{reason}");
    }
    assert_eq!(sys.rows("events", tenant.id).await, races as i64);
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, races as i64);
    sys.stop().await;
}

#[tokio::test]
async fn a_publish_with_the_event_id_as_message_id_cannot_make_the_gateways_event_disappear() {
    let sys = System::start(&[]).await;
    let (tenant, key) = sys.tenant("acme").await;
    sys.tenant("globex").await;
    // Anyone can compute an event id; publish first with it as the id.
    let victim = failure("order-1", "checkout", "payment_timeout");
    let id = awfdrs_domain::event_id("acme", "order-1").to_string();
    let mut squatter = nats_event(&sys, "globex", &failure("x", "checkout", "payment_timeout"));
    squatter.msg_id = id.clone();
    sys.ctx.bus.publish(squatter).await.unwrap();

    let (status, body) = sys.post("/api/v1/events", &key, &victim).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["event_id"], id);
    eventually(WAIT, "the gateway's event stored", || async {
        stored(&sys, tenant.id, "order-1").await
    })
    .await;
    sys.stop().await;
}

#[tokio::test]
async fn a_gateway_publish_whose_reservation_was_given_up_is_not_stored() {
    let sys = System::start(&[]).await;
    let (tenant, key) = sys.tenant("acme").await;
    // What a publish that timed out at the gateway (and was answered 503)
    // looks like when the broker takes it after all: a reservation that the
    // key's row does not hold.
    let late = failure("late-1", "checkout", "payment_timeout");
    let mut msg = nats_event(&sys, "acme", &late);
    let reservation = uuid::Uuid::new_v4().to_string();
    msg.headers = vec![
        (headers::SOURCE, "http".to_owned()),
        (headers::RESERVATION, reservation),
    ];
    sys.ctx.bus.publish(msg).await.unwrap();
    drained(&sys, 1).await;
    assert!(stored(&sys, tenant.id, "late-1").await.is_none());
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, 0);

    // The caller, told 503, sends the event again with another body: that
    // one is accepted and stored, not answered as a conflict.
    let mut again = late.clone();
    again["step"] = Value::from("capture");
    let (status, body) = sys.post("/api/v1/events", &key, &again).await;
    assert_eq!(status, 202, "{body}");
    let (h, source) = eventually(WAIT, "the resent event stored", || async {
        stored(&sys, tenant.id, "late-1").await
    })
    .await;
    assert_eq!(h, hash(&again));
    assert_eq!(source, "http");
    sys.stop().await;
}

#[tokio::test]
async fn a_producer_claiming_the_gateway_as_source_is_stored_as_nats() {
    let sys = System::start(&[]).await;
    let (tenant, _) = sys.tenant("acme").await;
    let mut msg = nats_event(&sys, "acme", &failure("k1", "checkout", "payment_timeout"));
    msg.headers = vec![(headers::SOURCE, "http".to_owned())];
    sys.ctx.bus.publish(msg).await.unwrap();
    let (_, source) = eventually(WAIT, "the event stored", || async {
        stored(&sys, tenant.id, "k1").await
    })
    .await;
    assert_eq!(source, "nats");
    sys.stop().await;
}

#[tokio::test]
async fn requests_dropped_mid_flight_leave_no_transaction_open_and_no_key_half_reserved() {
    let sys = System::start(&[]).await;
    let (tenant, key) = sys.tenant("acme").await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(3))
        .build()
        .unwrap();
    let keys: Vec<String> = (0..200).map(|i| format!("drop-{i}")).collect();
    let sends = keys.iter().map(|k| {
        impatient
            .post(format!("{}/api/v1/events", sys.base))
            .bearer_auth(&key)
            .json(&failure(k, "checkout", "payment_timeout"))
            .send()
    });
    let dropped = futures::future::join_all(sends)
        .await
        .iter()
        .filter(|r| r.is_err())
        .count();
    assert!(
        dropped > 0,
        "no request was dropped; the test proves nothing"
    );

    // Every key is either wholly accepted or not at all: asking again
    // answers 202 (never reserved) or 200 (stored), and each ends stored once.
    for k in &keys {
        let (status, body) = sys
            .post(
                "/api/v1/events",
                &key,
                &failure(k, "checkout", "payment_timeout"),
            )
            .await;
        assert!(status == 202 || status == 200, "{k}: {status} {body}");
    }
    eventually(WAIT, "every key stored once", || async {
        (sys.rows("events", tenant.id).await == keys.len() as i64).then_some(())
    })
    .await;
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, keys.len() as i64);
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(sys.ctx.store.pool())
    .await
    .unwrap();
    assert_eq!(open, 0, "a transaction was left open");
    sys.stop().await;
}
