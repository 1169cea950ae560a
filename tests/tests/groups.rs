//! Group commit of single-event requests: concurrent `POST /api/v1/events`
//! settled together keep every guarantee of a request settled alone. A
//! long linger makes concurrent requests share groups.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_bus::Topic;
use awfdrs_tests::{System, eventually, failure, nats_url};
use serde_json::{Value, json};

const LINGER: (&str, &str) = ("AWFDRS__HTTP__GROUP_LINGER_US", "20000");

/// Posts every body at once; the answers in order.
async fn post_all(sys: &System, key: &str, bodies: &[Value]) -> Vec<(u16, Value)> {
    futures::future::join_all(bodies.iter().map(|b| sys.post("/api/v1/events", key, b))).await
}

/// Groups settled so far and the requests in them, from `/metrics`.
fn groups(sys: &System) -> (f64, f64) {
    let text = sys.ctx.metrics.render();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("awfdrs_ingest_group_events_count "),
        value("awfdrs_ingest_group_events_sum "),
    )
}

fn assert_grouped(sys: &System, requests: usize) {
    let (count, sum) = groups(sys);
    assert_eq!(sum as usize, requests, "every request went through a group");
    assert!(
        count < sum,
        "{count} groups for {sum} requests: no two requests shared a group"
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_key_accept_exactly_one_and_answer_the_rest_for_it() {
    let sys = System::start(&[LINGER]).await;
    let (tenant, key) = sys.tenant("acme").await;
    let same = failure("same", "checkout", "payment_timeout");
    let mut bodies = vec![same.clone(); 12];
    let a = failure("contested", "checkout", "payment_timeout");
    let mut b = a.clone();
    b["error"]["code"] = json!("card_declined");
    bodies.push(a);
    bodies.push(b);
    bodies.extend((0..10).map(|i| failure(&format!("own-{i}"), "checkout", "vendor_5xx")));

    let answers = post_all(&sys, &key, &bodies).await;
    assert_grouped(&sys, bodies.len());

    let same_answers = &answers[..12];
    let accepted: Vec<&Value> = same_answers
        .iter()
        .filter(|(s, _)| *s == 202)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(accepted.len(), 1, "{same_answers:?}");
    let id = accepted[0]["event_id"].clone();
    for (status, body) in same_answers.iter().filter(|(s, _)| *s != 202) {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["duplicate"], true);
        assert_eq!(body["event_id"], id, "a duplicate names the accepted event");
    }
    let mut contested: Vec<u16> = answers[12..14].iter().map(|(s, _)| *s).collect();
    contested.sort_unstable();
    assert_eq!(contested, [202, 409], "{:?}", &answers[12..14]);
    for (status, body) in &answers[14..] {
        assert_eq!(*status, 202, "{body}");
    }

    // Every 202 is stored, once.
    let accepted = 1 + 1 + 10;
    eventually(
        Duration::from_secs(20),
        "every accepted event stored",
        || async { (sys.rows("events", tenant.id).await == accepted).then_some(()) },
    )
    .await;
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, accepted);
    assert_eq!(sys.ctx.bus.events_stored().await.unwrap(), accepted as u64);
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT id::text FROM events WHERE tenant_id = $1 AND idempotency_key = 'same'",
    )
    .bind(tenant.id)
    .fetch_optional(sys.ctx.store.pool())
    .await
    .unwrap();
    assert_eq!(stored.as_deref(), id.as_str());
    sys.stop().await;
}

#[tokio::test]
async fn a_publish_that_fails_inside_a_group_answers_503_to_its_request_and_keeps_nothing_of_it() {
    // No detector: its consumer would go with the stream.
    let sys = System::start_with(&[LINGER, ("AWFDRS__NATS__PUBLISH_TIMEOUT_MS", "2000")], 0).await;
    let (tenant, key) = sys.tenant("acme").await;
    // The events stream again, refusing messages over 2 KiB: a large event
    // fails its publish while a small one beside it in the group does not.
    sys.ctx.bus.delete_streams().await.unwrap();
    let ns = sys.ns();
    let js = async_nats::jetstream::new(async_nats::connect(nats_url()).await.unwrap());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: ns.stream(Topic::Events),
        subjects: vec![ns.subjects(Topic::Events)],
        max_message_size: 2048,
        ..Default::default()
    })
    .await
    .unwrap();

    let bodies: Vec<Value> = (0..16)
        .map(|i| {
            let mut e = failure(&format!("k-{i}"), "checkout", "payment_timeout");
            if i % 2 == 1 {
                e["metadata"] = json!({ "pad": "x".repeat(4000) });
            }
            e
        })
        .collect();
    let answers = post_all(&sys, &key, &bodies).await;
    assert_grouped(&sys, bodies.len());

    for (i, (status, body)) in answers.iter().enumerate() {
        let want = if i % 2 == 1 { 503 } else { 202 };
        assert_eq!(*status, want, "request {i}: {body}");
    }
    let mut kept: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM ingest_keys WHERE tenant_id = $1")
            .bind(tenant.id)
            .fetch_all(sys.ctx.store.pool())
            .await
            .unwrap();
    kept.sort_unstable();
    let mut want: Vec<String> = (0..16).step_by(2).map(|i| format!("k-{i}")).collect();
    want.sort_unstable();
    assert_eq!(kept, want, "only the accepted events keep their keys");
    assert_eq!(sys.ctx.bus.events_stored().await.unwrap(), 8);

    // The refused ones are not half-accepted: asked again with room in the
    // stream, each is new.
    sys.ctx.bus.delete_streams().await.unwrap();
    sys.ctx.bus.declare_streams().await.unwrap();
    let retried: Vec<Value> = bodies.iter().skip(1).step_by(2).cloned().collect();
    for (status, body) in post_all(&sys, &key, &retried).await {
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["duplicate"], false);
    }
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, 16);
    sys.stop().await;
}

/// Requests a lone client sends one after another.
const LONE: usize = 40;

#[tokio::test]
async fn a_lone_client_is_not_held_for_the_linger() {
    let sys = System::start(&[("AWFDRS__HTTP__GROUP_LINGER_US", "100000")]).await;
    let (tenant, key) = sys.tenant("acme").await;
    let started = std::time::Instant::now();
    for i in 0..LONE {
        let (status, body) = sys
            .post(
                "/api/v1/events",
                &key,
                &failure(&format!("lone-{i}"), "checkout", "x"),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
    // Each request is a group of its own, and the lingers it did not wait
    // would add up to 4 s: far more than forty requests take even on a
    // busy machine.
    assert_eq!(groups(&sys), (LONE as f64, LONE as f64));
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "a lone request waited for the linger: {:?} for {LONE}",
        started.elapsed()
    );
    eventually(Duration::from_secs(20), "every event stored", || async {
        (sys.rows("events", tenant.id).await == LONE as i64).then_some(())
    })
    .await;
    sys.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_keeps_nothing_of_those_it_refused() {
    let sys = System::start(&[
        LINGER,
        ("AWFDRS__HTTP__GROUP_MAX", "1"),
        ("AWFDRS__HTTP__GROUP_QUEUE", "1"),
        ("AWFDRS__HTTP__GROUP_SETTLEMENTS", "1"),
    ])
    .await;
    let (tenant, key) = sys.tenant("acme").await;
    let bodies: Vec<Value> = (0..60)
        .map(|i| failure(&format!("q-{i}"), "checkout", "payment_timeout"))
        .collect();
    let answers = futures::future::join_all(bodies.iter().map(|b| {
        sys.http
            .post(format!("{}/api/v1/events", sys.base))
            .bearer_auth(&key)
            .json(b)
            .send()
    }))
    .await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for (body, answer) in bodies.iter().zip(answers) {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            202 => accepted.push(body["idempotency_key"].as_str().unwrap().to_owned()),
            503 => {
                assert!(answer.headers().contains_key("retry-after"));
                refused += 1;
            }
            other => panic!("{other}: {}", answer.text().await.unwrap()),
        }
    }
    assert!(
        refused > 0,
        "the queue never filled; the test proves nothing"
    );
    let mut kept: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM ingest_keys WHERE tenant_id = $1")
            .bind(tenant.id)
            .fetch_all(sys.ctx.store.pool())
            .await
            .unwrap();
    kept.sort_unstable();
    accepted.sort_unstable();
    assert_eq!(kept, accepted, "exactly the accepted keys are kept");
    eventually(
        Duration::from_secs(20),
        "every accepted event stored",
        || async { (sys.rows("events", tenant.id).await == accepted.len() as i64).then_some(()) },
    )
    .await;
    sys.stop().await;
}
