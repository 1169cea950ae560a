//! Quiet when fixed: a notification about a retryable incident waits its
//! error code's `notify_after`, and is cancelled, never sent, when the
//! incident resolves first; one that does not resolve goes once the time
//! has passed.

use std::time::Duration;

use awfdrs_tests::{System, eventually, rules_edited};
use chrono::{DateTime, Utc};

use crate::support::{Receiver, add_channel, channel, fail};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_notification_held_by_notify_after_is_not_sent_when_the_incident_resolves_first() {
    // payment_timeout (retryable, high) waits 3 s before people are told.
    held_back_and_cancelled((
        "error_codes.yaml",
        "    retry_policy: payment_timeout
",
        "    retry_policy: payment_timeout
    notify_after: 3s
",
    ))
    .await;
}

#[tokio::test]
async fn notify_after_by_severity_holds_a_code_that_sets_none() {
    // No code sets one; high incidents wait 3 s.
    held_back_and_cancelled((
        "error_codes.yaml",
        "\ndefault:\n",
        "\nnotify_after: { high: 3s, low: 1h }\ndefault:\n",
    ))
    .await;
}

/// Three payment_timeout incidents; stripe allows one retry an hour, so
/// all but the first are escalated straight away (over the hard limit),
/// held back by `edit`'s notify_after: the one resolved meanwhile sends
/// nothing, the other goes after its time.
async fn held_back_and_cancelled(edit: (&str, &str, &str)) {
    let rules = rules_edited(&[
        edit,
        (
            "vendor_config.yaml",
            "max_retries_per_vendor_per_hour: 1000",
            "max_retries_per_vendor_per_hour: 1",
        ),
    ]);
    let sys = System::start_all(&[("AWFDRS__RULES__DIR", rules.to_str().unwrap())]).await;
    let (_, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[]).await;
    let (channel_id, _) =
        add_channel(&sys, &key, channel("oncall", "webhook", &receiver.url)).await;
    for (run, workflow) in [
        ("run-1", "checkout"),
        ("run-2", "payouts"),
        ("run-3", "refunds"),
    ] {
        fail(&sys, &key, run, workflow, "payment_timeout").await;
    }
    let pool = sys.ctx.store.pool().clone();
    let escalated: Vec<uuid::Uuid> = eventually(WAIT, "two escalated and queued", || async {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT incident_id FROM notifications WHERE type = 'incident.escalated' ORDER BY incident_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        (ids.len() == 2).then_some(ids)
    })
    .await;
    let (fixed, left) = (escalated[0], escalated[1]);
    // One is fixed (here by an operator) before its time.
    let (status, _) = sys
        .post(
            &format!("/api/v1/incidents/{fixed}/resolve"),
            &key,
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200);

    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].json()["incident"]["id"], left.to_string());
    let (status, why): (String, Option<String>) =
        eventually(WAIT, "the other cancelled", || async {
            let row: (String, Option<String>) = sqlx::query_as(
                "SELECT status, last_error FROM notifications WHERE incident_id = $1",
            )
            .bind(fixed)
            .fetch_one(&pool)
            .await
            .unwrap();
            (row.0 == "CANCELLED").then_some(row)
        })
        .await;
    assert_eq!(status, "CANCELLED");
    let why = why.unwrap();
    assert!(
        why.contains("resolved (by operator:acme) within notify_after"),
        "{why}"
    );
    // The one sent waited its time (recorded once its POST was answered,
    // a moment after the receiver got it).
    let (created, delivered): (DateTime<Utc>, DateTime<Utc>) =
        eventually(WAIT, "the other recorded delivered", || async {
            let row: (DateTime<Utc>, Option<DateTime<Utc>>) = sqlx::query_as(
                "SELECT created_at, delivered_at FROM notifications WHERE incident_id = $1 AND channel_id = $2",
            )
            .bind(left)
            .bind(channel_id)
            .fetch_one(&pool)
            .await
            .unwrap();
            row.1.map(|d| (row.0, d))
        })
        .await;
    assert!(
        delivered - created >= chrono::Duration::milliseconds(2900),
        "sent {} ms after it was queued",
        (delivered - created).num_milliseconds()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.got().len(), 1, "the fixed incident was notified");
    assert!(
        sys.ctx
            .metrics
            .render()
            .contains("awfdrs_notifications_suppressed_total 1")
    );
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}
