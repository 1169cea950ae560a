//! Escalation levels: an incident nobody acknowledged in time goes on to
//! the next level of channels, and so does one whose level failed on every
//! channel (a fallback); an acknowledgement stops it.

use std::time::Duration;

use awfdrs_tests::System;
use serde_json::json;

use crate::support::{Receiver, add_channel, channel, fail, notifications, settled};

fn at_level(name: &str, url: &str, level: i64) -> serde_json::Value {
    let mut c = channel(name, "webhook", url);
    c["level"] = json!(level);
    c
}

#[tokio::test]
async fn an_unacknowledged_incident_goes_on_to_the_next_level() {
    let sys = System::start_all(&[("AWFDRS__NOTIFICATIONS__ESCALATE_AFTER_MS", "1000")]).await;
    let (_, key) = sys.tenant("acme").await;
    let (first, second, third) = (
        Receiver::start(&[]).await,
        Receiver::start(&[]).await,
        Receiver::start(&[]).await,
    );
    let (first_id, _) = add_channel(&sys, &key, at_level("oncall", &first.url, 1)).await;
    // Levels need not be consecutive; the next one that has channels is told.
    let (second_id, _) = add_channel(&sys, &key, at_level("lead", &second.url, 3)).await;
    let (third_id, _) = add_channel(&sys, &key, at_level("boss", &third.url, 5)).await;
    let incident = fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    settled(&sys, first_id, "DELIVERED").await;
    assert!(
        second.got().is_empty() && third.got().is_empty(),
        "level 1 first"
    );
    let got = second.wait_for(1).await;
    let body = got[0].json();
    assert_eq!(body["level"], 3);
    assert_eq!(body["type"], "incident.escalated");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("not acknowledged"),
        "{body}"
    );
    third.wait_for(1).await;
    settled(&sys, second_id, "DELIVERED").await;
    settled(&sys, third_id, "DELIVERED").await;
    let (_, detail) = sys
        .get(&format!("/api/v1/incidents/{incident}"), &key)
        .await;
    let levels: Vec<i64> = detail["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["level"].as_i64().unwrap())
        .collect();
    assert_eq!(levels, [1, 3, 5], "{detail}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        first.got().len() + second.got().len() + third.got().len(),
        3,
        "each once"
    );
    sys.stop().await;
}

#[tokio::test]
async fn an_acknowledgement_stops_the_next_level() {
    let sys = System::start_all(&[("AWFDRS__NOTIFICATIONS__ESCALATE_AFTER_MS", "2000")]).await;
    let (_, key) = sys.tenant("acme").await;
    let (_, other_key) = sys.tenant("globex").await;
    let (first, second) = (Receiver::start(&[]).await, Receiver::start(&[]).await);
    let (first_id, _) = add_channel(&sys, &key, at_level("oncall", &first.url, 1)).await;
    let (second_id, _) = add_channel(&sys, &key, at_level("lead", &second.url, 2)).await;
    let incident = fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    settled(&sys, first_id, "DELIVERED").await;
    let path = format!("/api/v1/incidents/{incident}/acknowledge");
    let (status, _) = sys.post(&path, &other_key, &json!({})).await;
    assert_eq!(status, 404, "another tenant's incident");
    let (status, body) = sys.post(&path, &key, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acknowledged_by"], "operator:acme");
    let at = body["acknowledged_at"].clone();
    assert!(at.is_string(), "{body}");
    let (status, again) = sys.post(&path, &key, &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        again["acknowledged_at"], at,
        "the first acknowledgement stays"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(second.got().is_empty(), "level 2 not told");
    assert!(notifications(&sys, second_id).await.is_empty());
    let (status, _) = sys
        .post(
            "/api/v1/incidents/00000000-0000-0000-0000-000000000000/acknowledge",
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);
    sys.stop().await;
}

#[tokio::test]
async fn the_cli_adds_a_channel_at_a_level_and_acknowledges() {
    let sys = System::start_all(&[("AWFDRS__NOTIFICATIONS__ESCALATE_AFTER_MS", "2000")]).await;
    let (tenant, key) = sys.tenant("acme").await;
    let (first, second) = (Receiver::start(&[]).await, Receiver::start(&[]).await);
    awfdrs_tests::cli(
        &sys.world,
        &["channels", "add", "oncall", &first.url, "--tenant", "acme"],
    )
    .await;
    awfdrs_tests::cli(
        &sys.world,
        &[
            "channels",
            "add",
            "boss",
            &second.url,
            "--tenant",
            "acme",
            "--level",
            "2",
        ],
    )
    .await;
    let channels = sys.ctx.store.channels(tenant.id).await.unwrap();
    assert_eq!(channels.iter().map(|c| c.level).collect::<Vec<_>>(), [1, 2]);
    let incident = fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    settled(&sys, channels[0].id, "DELIVERED").await;
    let out = awfdrs_tests::cli(&sys.world, &["incidents", "ack", &incident.to_string()]).await;
    assert!(out.contains("acknowledged"), "{out}");
    let (_, detail) = sys
        .get(&format!("/api/v1/incidents/{incident}"), &key)
        .await;
    assert!(
        detail["acknowledged_by"]
            .as_str()
            .unwrap()
            .starts_with("operator:"),
        "{detail}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(second.got().is_empty(), "level 2 not told");
    sys.stop().await;
}

#[tokio::test]
async fn a_level_that_keeps_failing_falls_back_to_the_next_at_once() {
    let sys = System::start_all(&[
        ("AWFDRS__NOTIFICATIONS__ESCALATE_AFTER_MS", "600000"),
        ("AWFDRS__NOTIFICATIONS__MAX_TRIES", "2"),
    ])
    .await;
    let (_, key) = sys.tenant("acme").await;
    let (broken, backup) = (
        Receiver::start(&[(500, None), (500, None), (500, None)]).await,
        Receiver::start(&[]).await,
    );
    let (broken_id, _) = add_channel(&sys, &key, at_level("oncall", &broken.url, 1)).await;
    let (backup_id, _) = add_channel(&sys, &key, at_level("backup", &backup.url, 2)).await;
    fail(&sys, &key, "order-1", "checkout", "invalid_api_key").await;
    settled(&sys, broken_id, "FAILED").await;
    assert_eq!(broken.got().len(), 2, "max_tries tries");
    let got = backup.wait_for(1).await;
    let body = got[0].json();
    assert_eq!(body["level"], 2);
    assert!(
        body["reason"].as_str().unwrap().contains("fallback"),
        "{body}"
    );
    settled(&sys, backup_id, "DELIVERED").await;
    let metrics = sys.ctx.metrics.render();
    assert!(
        metrics.contains("awfdrs_notification_fallbacks_total 1"),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(backup.got().len(), 1, "once");
    sys.stop().await;
}
