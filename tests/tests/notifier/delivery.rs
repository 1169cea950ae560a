//! Deliveries: one per channel, in its kind's body, signed; filtered by
//! `min_severity`; never twice for a redelivered escalation; resolutions
//! told to the channels told of the escalation.

use std::time::Duration;

use awfdrs_bus::Outgoing;
use awfdrs_tests::{System, eventually};
use axum::http::HeaderValue;
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::{Value, json};
use standardwebhooks::Webhook;
use uuid::Uuid;

use crate::support::{Receiver, WAIT, add_channel, channel, fail, notifications, settled, verify};

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
    // The receiver's check refuses what a real delivery is not.
    let mut empty = got[0].clone();
    empty
        .headers
        .insert("webhook-signature", HeaderValue::from_static(""));
    assert!(verify(&w_secret, &empty).is_err(), "an empty signature");
    let mut stale = got[0].clone();
    let old = chrono::Utc::now().timestamp() - 6 * 60;
    let resigned = Webhook::new(&w_secret)
        .unwrap()
        .sign(&msg_id, old, &stale.body)
        .unwrap();
    stale.headers.insert("webhook-timestamp", old.into());
    stale
        .headers
        .insert("webhook-signature", resigned.parse().unwrap());
    assert!(
        matches!(
            verify(&w_secret, &stale),
            Err(standardwebhooks::WebhookError::TimestampTooOldError)
        ),
        "a timestamp over 5 minutes old"
    );
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

#[tokio::test]
async fn a_resolved_incident_is_told_to_every_channel_told_of_its_escalation_once() {
    let sys = System::start_all(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let (webhook, pager, quiet) = (
        Receiver::start(&[]).await,
        Receiver::start(&[]).await,
        Receiver::start(&[]).await,
    );
    let (w_id, w_secret) = add_channel(&sys, &key, channel("ops", "webhook", &webhook.url)).await;
    let mut pd = channel("pager", "pagerduty", &pager.url);
    pd["routing_key"] = json!("R0UT1NGKEY");
    let (p_id, _) = add_channel(&sys, &key, pd).await;
    let mut q = channel("quiet", "webhook", &quiet.url);
    q["min_severity"] = json!("critical");
    let (q_id, _) = add_channel(&sys, &key, q).await;

    // Low severity: the critical-only channel is not told, so not told of
    // the resolution either.
    let incident = fail(&sys, &key, "order-1", "checkout", "validation_error").await;
    settled(&sys, w_id, "DELIVERED").await;
    settled(&sys, p_id, "DELIVERED").await;
    let (status, body) = sys
        .post(
            &format!("/api/v1/incidents/{incident}/resolve"),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = webhook.wait_for(2).await;
    let resolved = got[1].json();
    assert_eq!(resolved["type"], "incident.resolved");
    assert_eq!(resolved["incident"]["status"], "RESOLVED");
    assert!(
        resolved["reason"]
            .as_str()
            .unwrap()
            .starts_with("resolved by operator:"),
        "{resolved}"
    );
    verify(&w_secret, &got[1]).expect("signed");
    assert_ne!(
        got[0].header("webhook-id"),
        got[1].header("webhook-id"),
        "another notification"
    );
    let got = pager.wait_for(2).await;
    let (trigger, resolve) = (got[0].json(), got[1].json());
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert_eq!(resolve["dedup_key"], incident.to_string());
    assert_eq!(resolve["routing_key"], "R0UT1NGKEY");

    let (_, detail) = sys
        .get(&format!("/api/v1/incidents/{incident}"), &key)
        .await;
    let types: Vec<(String, String)> = detail["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["channel"].as_str().unwrap().to_owned(),
                n["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(types.len(), 4, "{types:?}");
    for name in ["ops", "pager"] {
        for t in ["incident.escalated", "incident.resolved"] {
            assert!(
                types.contains(&(name.into(), t.into())),
                "{name} {t}: {types:?}"
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(webhook.got().len(), 2, "told once");
    assert_eq!(pager.got().len(), 2, "told once");
    assert!(quiet.got().is_empty());
    assert!(notifications(&sys, q_id).await.is_empty());
    sys.stop().await;
}
