//! Grouping: the incidents of one vendor outage (the vendor at fault, the
//! same error code) within the grouping window are told in one
//! notification per channel that lists them and their count, not one page
//! per workflow; their resolution is one notification per channel too. An
//! incident of another root cause in the same window is told on its own.

use std::collections::BTreeSet;
use std::time::Duration;

use awfdrs_tests::{System, eventually, failure, rules_edited};
use serde_json::json;
use uuid::Uuid;

use crate::support::{Receiver, WAIT, add_channel, channel, fail, verify};

const WORKFLOWS: usize = 20;

#[tokio::test]
async fn a_vendor_outage_across_20_workflows_sends_one_grouped_notification_per_channel() {
    // service_unavailable (stripe at fault) is escalated at once here,
    // not retried, so every workflow's incident reaches the notifier.
    let rules = rules_edited(&[(
        "error_codes.yaml",
        "retry_policy: vendor_outage",
        "retry_policy: none",
    )]);
    let sys = System::start_all(&[
        ("AWFDRS__RULES__DIR", rules.to_str().unwrap()),
        ("AWFDRS__NOTIFICATIONS__GROUP_WINDOW_MS", "120000"),
        // Long enough for every escalation of the outage to arrive on a
        // busy machine before the group is sent.
        ("AWFDRS__NOTIFICATIONS__GROUP_WAIT_MS", "15000"),
    ])
    .await;
    let (_, key) = sys.tenant("acme").await;
    let (webhook, slack, pager) = (
        Receiver::start(&[]).await,
        Receiver::start(&[]).await,
        Receiver::start(&[]).await,
    );
    let (webhook_id, secret) =
        add_channel(&sys, &key, channel("ops", "webhook", &webhook.url)).await;
    let (slack_id, _) = add_channel(&sys, &key, channel("chat", "slack", &slack.url)).await;
    let mut pd = channel("pager", "pagerduty", &pager.url);
    pd["routing_key"] = json!("R0UT1NGKEY");
    let (pager_id, _) = add_channel(&sys, &key, pd).await;

    let posts = (0..WORKFLOWS).map(|i| {
        let body = failure(
            &format!("run-{i}"),
            &format!("wf-{i:02}"),
            "service_unavailable",
        );
        let sys = &sys;
        let key = &key;
        async move { sys.post("/api/v1/events", key, &body).await }
    });
    for (status, body) in futures::future::join_all(posts).await {
        assert_eq!(status, 202, "{body}");
    }
    // Another root cause in the same window: told on its own.
    let other = fail(&sys, &key, "run-x", "signup", "invalid_api_key").await;

    let pool = sys.ctx.store.pool().clone();
    let incidents: Vec<Uuid> = eventually(WAIT, "every escalation queued", || async {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT m.incident_id FROM notification_incidents m
             WHERE m.channel_id = $1 AND m.type = 'incident.escalated' AND m.incident_id <> $2",
        )
        .bind(webhook_id)
        .bind(other)
        .fetch_all(&pool)
        .await
        .unwrap();
        // And every incident, the other one too, is queued on all three.
        let queued: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notification_incidents WHERE type = 'incident.escalated'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (ids.len() == WORKFLOWS && queued == 3 * (WORKFLOWS as i64 + 1)).then_some(ids)
    })
    .await;
    for channel_id in [webhook_id, slack_id, pager_id] {
        let rows: Vec<(Uuid, i32)> = sqlx::query_as(
            "SELECT incident_id, incident_count FROM notifications
             WHERE channel_id = $1 AND type = 'incident.escalated' ORDER BY incident_count",
        )
        .bind(channel_id)
        .fetch_all(&pool)
        .await
        .unwrap();
        let counts: Vec<i32> = rows.iter().map(|r| r.1).collect();
        assert_eq!(
            counts,
            [1, WORKFLOWS as i32],
            "one notification of the outage, one of the other"
        );
        assert_eq!(rows[0].0, other);
    }

    // Two requests each: the other incident, and the outage's group.
    let got = webhook.wait_for(2).await;
    let group = got
        .iter()
        .map(|r| r.json())
        .find(|b| b["group"]["count"] == WORKFLOWS)
        .expect("the grouped notification");
    assert_eq!(group["type"], "incident.escalated");
    let listed: BTreeSet<String> = group["group"]["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["workflow_id"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = (0..WORKFLOWS).map(|i| format!("wf-{i:02}")).collect();
    assert_eq!(listed, expected);
    for r in &got {
        verify(&secret, r).expect("signed");
    }
    let texts: Vec<String> = slack
        .wait_for(2)
        .await
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("20 incidents, one root cause.")),
        "{texts:?}"
    );
    let pages: Vec<serde_json::Value> = pager.wait_for(2).await.iter().map(|r| r.json()).collect();
    let page = pages
        .iter()
        .find(|p| p["payload"]["custom_details"]["group"]["count"] == WORKFLOWS)
        .expect("the grouped page");
    assert!(
        page["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("[20 incidents]"),
        "{page}"
    );
    let lead = page["dedup_key"].as_str().unwrap().to_owned();

    // Every incident's view shows the one notification it is in.
    let (_, detail) = sys
        .get(&format!("/api/v1/incidents/{}", incidents[7]), &key)
        .await;
    let shown = &detail["notifications"];
    assert_eq!(shown.as_array().unwrap().len(), 3, "{detail}");
    assert!(
        shown
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["incident_count"] == WORKFLOWS && n["lead_incident_id"] == lead.as_str()),
        "{detail}"
    );

    // The outage ends: one resolution per channel, for the whole group.
    for id in &incidents {
        let (status, body) = sys
            .post(&format!("/api/v1/incidents/{id}/resolve"), &key, &json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let got = webhook.wait_for(3).await;
    let resolved = got[2].json();
    assert_eq!(resolved["type"], "incident.resolved");
    assert_eq!(resolved["group"]["count"], WORKFLOWS);
    let pages = pager.wait_for(3).await;
    let resolve = pages[2].json();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], lead.as_str());
    slack.wait_for(3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        (webhook.got().len(), slack.got().len(), pager.got().len()),
        (3, 3, 3),
        "each channel: the other incident, the group, its resolution"
    );
    sys.stop().await;
}
