//! The detector's pipeline against real NATS and PostgreSQL: batches
//! handled at once still update incidents in the stream's order, and the
//! same key in two batches in flight is stored once without a stall.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_bus::{Outgoing, Stage};
use awfdrs_tests::{System, eventually, failure, success};
use bytes::Bytes;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const WORKFLOWS: usize = 40;

/// One message per batch, two batches in flight.
const ONE_PER_BATCH: &[(&str, &str)] = &[
    ("AWFDRS__DETECTOR__BATCH_SIZE", "1"),
    ("AWFDRS__DETECTOR__LINGER_MS", "0"),
    ("AWFDRS__DETECTOR__PIPELINE", "2"),
    ("AWFDRS__DETECTOR__AUTO_RESOLVE_SUCCESSES", "1"),
];

fn message(sys: &System, event: &Value) -> Outgoing {
    Outgoing {
        subject: sys
            .ns()
            .events_subject("acme", event["workflow_id"].as_str().unwrap()),
        msg_id: uuid::Uuid::new_v4().to_string(),
        correlation_id: None,
        headers: Vec::new(),
        payload: Bytes::from(event.to_string()),
    }
}

async fn settled(sys: &System, tenant: uuid::Uuid, events: i64) {
    eventually(
        WAIT,
        "every event stored and every message settled",
        || async {
            (sys.rows("events", tenant).await == events
                && sys.ctx.bus.consumer_backlog(Stage::Detector).await.unwrap() == 0)
                .then_some(())
        },
    )
    .await;
}

async fn incidents(sys: &System, key: &str) -> Vec<Value> {
    let (status, body) = sys.get("/api/v1/incidents?limit=500", key).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_success_in_the_next_batch_resolves_the_incident_its_failure_opened() {
    let sys = System::start(ONE_PER_BATCH).await;
    let (tenant, key) = sys.tenant("acme").await;
    let mut msgs = Vec::new();
    for w in 0..WORKFLOWS {
        let workflow = format!("wf{w}");
        let failed = failure(&format!("f{w}"), &workflow, "payment_timeout");
        let mut fixed = success(&format!("s{w}"), &workflow);
        // The success comes after the failure, in time as in the stream.
        let at: chrono::DateTime<chrono::Utc> =
            failed["occurred_at"].as_str().unwrap().parse().unwrap();
        fixed["occurred_at"] = (at + chrono::Duration::milliseconds(1)).to_rfc3339().into();
        msgs.push(message(&sys, &failed));
        msgs.push(message(&sys, &fixed));
    }
    for r in sys.ctx.bus.publish_many(msgs).await {
        r.unwrap();
    }
    settled(&sys, tenant.id, 2 * WORKFLOWS as i64).await;
    let items = incidents(&sys, &key).await;
    assert_eq!(items.len(), WORKFLOWS, "{items:?}");
    for i in &items {
        assert_eq!(i["status"], "RESOLVED", "{i}");
        assert_eq!(i["event_count"], 1, "{i}");
    }
    sys.stop().await;
}

#[tokio::test]
async fn the_same_key_in_two_batches_in_flight_is_stored_once() {
    let sys = System::start(ONE_PER_BATCH).await;
    let (tenant, key) = sys.tenant("acme").await;
    let mut msgs = Vec::new();
    for w in 0..WORKFLOWS {
        let e = failure(&format!("k{w}"), "checkout", "payment_timeout");
        // Published twice under two message ids, as a producer retrying
        // would: consecutive batches carry the same key.
        msgs.push(message(&sys, &e));
        msgs.push(message(&sys, &e));
    }
    for r in sys.ctx.bus.publish_many(msgs).await {
        r.unwrap();
    }
    settled(&sys, tenant.id, WORKFLOWS as i64).await;
    let items = incidents(&sys, &key).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["event_count"], WORKFLOWS, "{}", items[0]);
    let metrics = sys.ctx.metrics.render();
    assert!(
        metrics.contains(&format!(
            "awfdrs_events_duplicate_total{{source=\"nats\"}} {WORKFLOWS}"
        )),
        "{metrics}"
    );
    sys.stop().await;
}
