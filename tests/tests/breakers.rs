//! The detector feeds the shared vendor breakers; operators read and reset
//! them over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_tests::{System, eventually, failure};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn vendor_failure(key: &str, vendor: &str, code: &str) -> Value {
    let mut e = failure(key, "checkout", code);
    e["vendor"] = json!(vendor);
    e
}

async fn breaker(sys: &System, key: &str, vendor: &str) -> Option<Value> {
    let (status, body) = sys.get("/api/v1/breakers", key).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["vendor"] == vendor)
        .cloned()
}

async fn send(sys: &System, key: &str, events: Vec<Value>) {
    for chunk in events.chunks(100) {
        let (status, body) = sys.post("/api/v1/events/batch", key, &json!(chunk)).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == 202),
            "{body}"
        );
    }
}

#[tokio::test]
async fn vendor_failures_from_enough_tenants_open_the_breaker_and_an_admin_resets_it() {
    let sys = System::start(&[]).await;
    let (a, a_key) = sys.tenant("acme").await;
    let (_, b_key) = sys.tenant("globex").await;
    let admin = awfdrs_domain::new_api_key();
    sys.ctx.store.create_admin_key("ops", &admin).await.unwrap();

    // One tenant's bad credentials, then one tenant's vendor errors: an auth
    // error is not the vendor's fault, and one source is below
    // min_distinct_sources (2), so the breaker stays closed.
    let mut storm: Vec<Value> = (0..40)
        .map(|i| vendor_failure(&format!("auth{i}"), "acmepay", "auth_failed"))
        .collect();
    storm.extend((0..30).map(|i| vendor_failure(&format!("5xx{i}"), "acmepay", "vendor_5xx")));
    send(&sys, &a_key, storm).await;
    eventually(WAIT, "70 events persisted", || async {
        (sys.rows("events", a.id).await == 70).then_some(())
    })
    .await;
    // The feed merges a few times a second: wait for the merged window.
    let b = eventually(WAIT, "the merged window", || async {
        breaker(&sys, &a_key, "acmepay")
            .await
            .filter(|b| b["calls"] == 30)
    })
    .await;
    assert_eq!(b["state"], "CLOSED", "{b}");
    assert_eq!(b["failures"], 30, "auth errors must not count: {b}");

    // A second tenant's vendor errors: now the vendor is to blame.
    send(
        &sys,
        &b_key,
        (0..10)
            .map(|i| vendor_failure(&format!("b5xx{i}"), "acmepay", "vendor_5xx"))
            .collect(),
    )
    .await;
    let b = eventually(WAIT, "the breaker to open", || async {
        breaker(&sys, &a_key, "acmepay")
            .await
            .filter(|b| b["state"] == "OPEN")
    })
    .await;
    assert!(b["opened_at"].is_string(), "{b}");

    // Only an admin resets a shared breaker.
    let url = "/api/v1/breakers/acmepay/reset";
    let (status, _) = sys.post(url, &a_key, &json!({})).await;
    assert_eq!(status, 403);
    let (status, body) = sys.post(url, &admin, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "CLOSED");
    let transitions: Vec<(String, String)> = sqlx::query_as(
        "SELECT to_state, actor FROM breaker_transitions WHERE vendor = 'acmepay' ORDER BY id",
    )
    .fetch_all(sys.ctx.store.pool())
    .await
    .unwrap();
    let states: Vec<&str> = transitions.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(states, ["OPEN", "CLOSED"], "{transitions:?}");
    assert!(transitions[1].1.starts_with("operator"), "{transitions:?}");
    sys.stop().await;
}
