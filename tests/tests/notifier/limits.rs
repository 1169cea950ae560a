//! A channel's rate limit: deliveries over it wait their turn, without
//! spending a try; and a level's own `escalate_after`.

use std::time::Duration;

use awfdrs_tests::{System, eventually};
use serde_json::json;

use crate::support::{Receiver, WAIT, add_channel, channel, fail, post_channel, settled};

#[tokio::test]
async fn a_channel_is_sent_no_more_than_its_rate_and_waiting_spends_no_try() {
    let sys = System::start_all(&[("AWFDRS__NOTIFICATIONS__CHANNEL_BURST", "2")]).await;
    let (_, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[]).await;
    let mut c = channel("ops", "webhook", &receiver.url);
    c["rate_per_minute"] = json!(60);
    let (channel_id, _) = add_channel(&sys, &key, c).await;
    const N: usize = 6;
    for i in 0..N {
        fail(
            &sys,
            &key,
            &format!("run-{i}"),
            &format!("wf-{i}"),
            "invalid_api_key",
        )
        .await;
    }
    let got = receiver.wait_for(N).await;
    let rows = settled(&sys, channel_id, "DELIVERED").await;
    assert_eq!(rows.len(), N);
    assert!(rows.iter().all(|r| r.1 == 1), "one try each: {rows:?}");
    let tries: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notification_tries t JOIN notifications n ON n.id = t.notification_id
         WHERE n.channel_id = $1",
    )
    .bind(channel_id)
    .fetch_one(sys.ctx.store.pool())
    .await
    .unwrap();
    assert_eq!(tries, N as i64, "a rate-limited wait is not a try");
    // One a second after a burst of two: any three span at least a second
    // (less a little for the clocks).
    let mut at: Vec<_> = got.iter().map(|r| r.at).collect();
    at.sort();
    for w in at.windows(3) {
        assert!(
            w[2] - w[0] >= Duration::from_millis(900),
            "three within {:?}",
            w[2] - w[0]
        );
    }
    sys.stop().await;
}

#[tokio::test]
async fn a_level_waits_its_own_escalate_after_and_bad_values_are_refused() {
    // The default wait is far longer than the test.
    let sys = System::start_all(&[("AWFDRS__NOTIFICATIONS__ESCALATE_AFTER_MS", "900000")]).await;
    let (_, key) = sys.tenant("acme").await;
    for (field, value) in [
        ("escalate_after_ms", json!(999)),
        ("escalate_after_ms", json!(604_800_001_i64)),
        ("escalate_after_ms", json!("soon")),
        ("rate_per_minute", json!(0)),
        ("rate_per_minute", json!(6001)),
    ] {
        let mut c = channel("bad", "webhook", "https://example.com/hook");
        c[field] = value.clone();
        let (status, body) = post_channel(&sys, &key, &c).await;
        assert_eq!(status, 422, "{field} = {value}: {body}");
    }
    let (first, second) = (Receiver::start(&[]).await, Receiver::start(&[]).await);
    let mut c = channel("oncall", "webhook", &first.url);
    c["escalate_after_ms"] = json!(1000);
    let (first_id, _) = add_channel(&sys, &key, c).await;
    let mut c = channel("lead", "webhook", &second.url);
    c["level"] = json!(2);
    add_channel(&sys, &key, c).await;
    let (_, listed) = sys.get("/api/v1/channels", &key).await;
    assert_eq!(listed["items"][0]["escalate_after_ms"], 1000, "{listed}");
    assert_eq!(
        listed["items"][1]["escalate_after_ms"],
        json!(null),
        "{listed}"
    );
    fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    settled(&sys, first_id, "DELIVERED").await;
    let got = second.wait_for(1).await;
    let body = got[0].json();
    assert_eq!(body["level"], 2);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("not acknowledged within 1 s of level 1"),
        "{body}"
    );
    let _ = eventually(WAIT, "level 2 recorded", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications WHERE level = 2 AND status = 'DELIVERED'",
        )
        .fetch_one(sys.ctx.store.pool())
        .await
        .unwrap();
        (n == 1).then_some(())
    })
    .await;
    sys.stop().await;
}
