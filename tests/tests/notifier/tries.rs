//! Tries: the same `webhook-id` on every try, `Retry-After` honoured,
//! given up after `notifications.max_tries`, never to a private address
//! or a removed channel.

use std::time::Duration;

use awfdrs_tests::{System, eventually};

use crate::support::{Receiver, WAIT, add_channel, channel, fail, notifications, settled, verify};

#[tokio::test]
async fn a_receiver_answering_500_then_200_gets_the_same_webhook_id_twice_and_no_third() {
    let sys = System::start_all(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[(500, None)]).await;
    let (id, secret) = add_channel(&sys, &key, channel("ops", "webhook", &receiver.url)).await;
    fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    let rows = settled(&sys, id, "DELIVERED").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, 2, "delivered at the second try");
    let got = receiver.got();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(got[0].header("webhook-id"), rows[0].2);
    assert_eq!(got[0].body, got[1].body, "the same body");
    for r in &got {
        verify(&secret, r).expect("every try signed");
    }
    let tries: Vec<(i32, Option<i32>, String, Option<i32>)> = sqlx::query_as(
        "SELECT t.try, t.status_code, t.outcome, t.latency_ms FROM notification_tries t
         JOIN notifications n ON n.id = t.notification_id WHERE n.channel_id = $1 ORDER BY t.try",
    )
    .bind(id)
    .fetch_all(sys.ctx.store.pool())
    .await
    .unwrap();
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert_eq!(
        (tries[0].0, tries[0].1, tries[0].2.as_str()),
        (1, Some(500), "retried")
    );
    assert_eq!(
        (tries[1].0, tries[1].1, tries[1].2.as_str()),
        (2, Some(200), "delivered")
    );
    assert!(tries.iter().all(|t| t.3.is_some()), "latency recorded");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.got().len(), 2, "no third time");
    sys.stop().await;
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_given_up_after_max_tries() {
    let sys = System::start_all(&[("AWFDRS__NOTIFICATIONS__MAX_TRIES", "2")]).await;
    let (_, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[(503, Some("1")), (503, None), (503, None)]).await;
    let (id, _) = add_channel(&sys, &key, channel("ops", "webhook", &receiver.url)).await;
    fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    let rows = settled(&sys, id, "FAILED").await;
    assert_eq!(rows[0].1, 2);
    let got = receiver.got();
    assert_eq!(got.len(), 2);
    let error: String =
        sqlx::query_scalar("SELECT last_error FROM notifications WHERE channel_id = $1")
            .bind(id)
            .fetch_one(sys.ctx.store.pool())
            .await
            .unwrap();
    assert!(
        error.contains("HTTP 503") && error.contains("gave up after 2 tries"),
        "{error}"
    );
    sys.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let sys = System::start_all(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[(429, Some("3"))]).await;
    let (id, _) = add_channel(&sys, &key, channel("ops", "webhook", &receiver.url)).await;
    fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    settled(&sys, id, "DELIVERED").await;
    let got = receiver.got();
    assert_eq!(got.len(), 2);
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= Duration::from_millis(2_900),
        "tried again after {waited:?}"
    );
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    sys.stop().await;
}

#[tokio::test]
async fn a_channel_at_a_private_address_is_refused_at_delivery_unless_allowed() {
    let sys = System::start_all(&[
        ("AWFDRS__NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "false"),
        ("AWFDRS__NOTIFICATIONS__MAX_TRIES", "1"),
    ])
    .await;
    let (tenant, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[]).await;
    // Written past the API's check, as a name that later resolves to a
    // private address would be.
    let c = sys
        .ctx
        .store
        .add_channel(&awfdrs_store::NewChannel {
            tenant_id: tenant.id,
            name: "inside",
            kind: "webhook",
            url: &receiver.url,
            secret: &awfdrs_domain::webhook::new_secret(),
            min_severity: "low",
            routing_key: None,
            level: 1,
            escalate_after_ms: None,
            rate_per_minute: None,
        })
        .await
        .unwrap();
    fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    settled(&sys, c.id, "FAILED").await;
    let error: String =
        sqlx::query_scalar("SELECT last_error FROM notifications WHERE channel_id = $1")
            .bind(c.id)
            .fetch_one(sys.ctx.store.pool())
            .await
            .unwrap();
    assert!(error.contains("not allowed"), "{error}");
    assert!(
        receiver.got().is_empty(),
        "nothing reached the private address"
    );
    sys.stop().await;
}

#[tokio::test]
async fn a_removed_channel_gets_nothing_more() {
    let sys = System::start_all(&[]).await;
    let (tenant, key) = sys.tenant("acme").await;
    let (kept, gone) = (Receiver::start(&[]).await, Receiver::start(&[]).await);
    let (kept_id, _) = add_channel(&sys, &key, channel("kept", "webhook", &kept.url)).await;
    let (gone_id, _) = add_channel(&sys, &key, channel("gone", "webhook", &gone.url)).await;
    assert!(
        sys.ctx
            .store
            .remove_channel(tenant.id, gone_id)
            .await
            .unwrap()
    );
    fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    settled(&sys, kept_id, "DELIVERED").await;
    assert!(notifications(&sys, gone_id).await.is_empty());
    assert!(gone.got().is_empty());

    // Removed between two tries: the next one is given up, not sent.
    let busy = Receiver::start(&[(503, Some("2"))]).await;
    let (busy_id, _) = add_channel(&sys, &key, channel("busy", "webhook", &busy.url)).await;
    fail(&sys, &key, "order-2", "billing", "invalid_api_key").await;
    busy.wait_for(1).await;
    eventually(WAIT, "the first try recorded", || async {
        let rows = notifications(&sys, busy_id).await;
        (rows.len() == 1 && rows[0].1 == 1 && rows[0].0 == "PENDING").then_some(())
    })
    .await;
    assert!(
        sys.ctx
            .store
            .remove_channel(tenant.id, busy_id)
            .await
            .unwrap()
    );
    settled(&sys, busy_id, "FAILED").await;
    let error: String =
        sqlx::query_scalar("SELECT last_error FROM notifications WHERE channel_id = $1")
            .bind(busy_id)
            .fetch_one(sys.ctx.store.pool())
            .await
            .unwrap();
    assert!(error.contains("removed"), "{error}");
    assert_eq!(busy.got().len(), 1, "nothing after the removal");
    sys.stop().await;
}
