//! Deliveries: one per channel, in its kind's body, signed; tried again
//! with the same `webhook-id`; filtered by `min_severity`; never twice for
//! a redelivered escalation.

use std::time::Duration;

use awfdrs_bus::Outgoing;
use awfdrs_tests::{System, eventually, failure};
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Receiver, WAIT, add_channel, channel, notifications, settled, verify};

/// Posts a failure of `workflow` with `code` and returns its incident id.
async fn fail(sys: &System, key: &str, run: &str, workflow: &str, code: &str) -> Uuid {
    let (status, body) = sys
        .post("/api/v1/events", key, &failure(run, workflow, code))
        .await;
    assert_eq!(status, 202, "{body}");
    let pool = sys.ctx.store.pool().clone();
    eventually(WAIT, "the incident opened", || async {
        sqlx::query_scalar("SELECT id FROM incidents WHERE workflow_id = $1")
            .bind(workflow)
            .fetch_optional(&pool)
            .await
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn a_permanent_error_notifies_each_channel_once_in_its_kinds_body() {
    let sys = System::start_all(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let (webhook, slack, pager) = (
        Receiver::start(&[]).await,
        Receiver::start(&[]).await,
        Receiver::start(&[]).await,
    );
    let (w_id, w_secret) = add_channel(&sys, &key, channel("ops", "webhook", &webhook.url)).await;
    let (s_id, s_secret) = add_channel(&sys, &key, channel("chat", "slack", &slack.url)).await;
    let mut pd = channel("pager", "pagerduty", &pager.url);
    pd["routing_key"] = json!("R0UT1NGKEY");
    let (p_id, p_secret) = add_channel(&sys, &key, pd).await;

    let incident = fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    for id in [w_id, s_id, p_id] {
        let rows = settled(&sys, id, "DELIVERED").await;
        assert_eq!(rows.len(), 1, "one notification per channel: {rows:?}");
        assert_eq!(rows[0].1, 1, "delivered at the first try");
    }

    // Webhook: the documented body, signed with its channel's secret.
    let got = webhook.got();
    assert_eq!(got.len(), 1);
    verify(&w_secret, &got[0]).expect("signed with the webhook channel's secret");
    assert!(verify(&s_secret, &got[0]).is_err(), "not with another's");
    let msg_id = got[0].header("webhook-id");
    assert_eq!(notifications(&sys, w_id).await[0].2, msg_id);
    let body = got[0].json();
    assert_eq!(body["type"], "incident.escalated");
    assert_eq!(body["level"], 1);
    assert_eq!(body["incident"]["id"], incident.to_string());
    assert_eq!(body["incident"]["error_code"], "invalid_api_key");
    assert_eq!(body["decision"]["incident_id"], incident.to_string());
    assert_eq!(body["decision"]["classification"]["severity"], "critical");
    assert!(
        body["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );

    // Slack: text and blocks with the incident, the root cause and the
    // recommendation.
    let got = slack.got();
    assert_eq!(got.len(), 1);
    verify(&s_secret, &got[0]).expect("signed with the slack channel's secret");
    let body = got[0].json();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains(&incident.to_string()) && text.contains("invalid_api_key"),
        "{text}"
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    let all = serde_json::to_string(blocks).unwrap();
    for part in [
        "*Root cause:*",
        "*Recommendation:* escalate",
        "*Severity*\\ncritical",
    ] {
        assert!(all.contains(part), "{part} in {all}");
    }
    for b in blocks {
        assert!(
            ["header", "section", "context"].contains(&b["type"].as_str().unwrap()),
            "{b}"
        );
    }

    // PagerDuty: an Events API v2 trigger deduplicated by the incident.
    let got = pager.got();
    assert_eq!(got.len(), 1);
    verify(&p_secret, &got[0]).expect("signed with the pagerduty channel's secret");
    let body = got[0].json();
    assert_eq!(body["routing_key"], "R0UT1NGKEY");
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["dedup_key"], incident.to_string());
    let p = &body["payload"];
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["source"], "awfdrs/checkout");
    let summary = p["summary"].as_str().unwrap();
    assert!(
        !summary.is_empty() && summary.chars().count() <= 1024,
        "{summary}"
    );
    assert_eq!(p["custom_details"]["incident_id"], incident.to_string());
    assert_eq!(p["custom_details"]["error_code"], "invalid_api_key");

    // The incident view lists them.
    let (status, detail) = sys
        .get(&format!("/api/v1/incidents/{incident}"), &key)
        .await;
    assert_eq!(status, 200);
    let listed = detail["notifications"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{detail}");
    for n in listed {
        assert_eq!(n["status"], "DELIVERED");
        assert_eq!(n["type"], "incident.escalated");
        assert_eq!(n["level"], 1);
        assert_eq!(n["tries"], 1);
    }
    let kinds: Vec<&str> = listed.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["webhook", "slack", "pagerduty"],
        "in the channels' order"
    );

    // Nothing more arrives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        webhook.got().len() + slack.got().len() + pager.got().len(),
        3
    );
    let metrics = sys.ctx.metrics.render();
    assert!(
        metrics.contains("awfdrs_notifications_total{kind=\"slack\",outcome=\"delivered\"} 1"),
        "{metrics}"
    );
    sys.stop().await;
}

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

#[tokio::test]
async fn min_severity_keeps_a_channel_quiet_below_it() {
    let sys = System::start_all(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let (all, pager) = (Receiver::start(&[]).await, Receiver::start(&[]).await);
    let (all_id, _) = add_channel(&sys, &key, channel("all", "webhook", &all.url)).await;
    let mut critical = channel("critical", "webhook", &pager.url);
    critical["min_severity"] = json!("critical");
    let (critical_id, _) = add_channel(&sys, &key, critical).await;

    // validation_error is low: only the channel that takes everything.
    let low = fail(&sys, &key, "order-1", "checkout", "validation_error").await;
    settled(&sys, all_id, "DELIVERED").await;
    assert_eq!(all.got()[0].json()["incident"]["id"], low.to_string());
    // invalid_api_key is critical: both.
    let high = fail(&sys, &key, "order-2", "billing", "invalid_api_key").await;
    settled(&sys, critical_id, "DELIVERED").await;
    let got = pager.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["incident"]["id"], high.to_string());
    all.wait_for(2).await;
    assert_eq!(notifications(&sys, all_id).await.len(), 2);
    assert_eq!(notifications(&sys, critical_id).await.len(), 1);
    sys.stop().await;
}

#[tokio::test]
async fn a_redelivered_escalation_makes_no_second_notification() {
    let sys = System::start_all(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[]).await;
    let (id, _) = add_channel(&sys, &key, channel("ops", "webhook", &receiver.url)).await;
    let mut escalations = sys
        .ctx
        .bus
        .subscribe(format!("{}.escalations.>", sys.ns().as_str()))
        .await
        .unwrap();
    fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    let msg = tokio::time::timeout(WAIT, escalations.next())
        .await
        .expect("an escalation")
        .unwrap();
    settled(&sys, id, "DELIVERED").await;

    // The same escalation again (another message id), then one about an
    // incident that is not recorded: once that is dead-lettered, the
    // first was handled.
    let publish = |msg_id: &str, payload: Bytes| Outgoing {
        subject: sys.ctx.bus.ns().escalations("acme"),
        msg_id: msg_id.into(),
        correlation_id: None,
        headers: Vec::new(),
        payload,
    };
    sys.ctx
        .bus
        .publish(publish("redelivered", msg.payload.clone()))
        .await
        .unwrap();
    let mut forged: Value = serde_json::from_slice(&msg.payload).unwrap();
    forged["incident_id"] = json!(Uuid::new_v4());
    sys.ctx
        .bus
        .publish(publish("forged", Bytes::from(forged.to_string())))
        .await
        .unwrap();
    let pool = sys.ctx.store.pool().clone();
    eventually(WAIT, "the forged escalation dead-lettered", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dead_letters WHERE reason LIKE '%is not recorded%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (n == 1).then_some(())
    })
    .await;
    let rows = notifications(&sys, id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "DELIVERED");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.got().len(), 1, "delivered once");
    sys.stop().await;
}
