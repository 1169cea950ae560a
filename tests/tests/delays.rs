//! When a retry is due: not before the `Retry-After` the failures carried
//! (the larger of it and the policy's delay), and never later than the
//! policy's `max_delay`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_tests::{System, eventually, failure};
use chrono::{DateTime, Utc};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_retry_is_due_no_sooner_than_retry_after_and_no_later_than_max_delay() {
    let sys = System::start_coordinated(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    // payment_timeout: 10 s jittered for the first attempt, at most 5 min.
    let cases = [
        ("asks-2m", "120"),
        ("asks-1h", "3600"),
        ("asks-nothing", ""),
    ];
    for (workflow, retry_after) in cases {
        let mut e = failure(&format!("k-{workflow}"), workflow, "payment_timeout");
        if !retry_after.is_empty() {
            e["metadata"] = serde_json::json!({ "retry_after": retry_after });
        }
        assert_eq!(sys.post("/api/v1/events", &key, &e).await.0, 202);
    }
    let pool = sys.ctx.store.pool().clone();
    let rows: Vec<(String, DateTime<Utc>, DateTime<Utc>)> =
        eventually(WAIT, "three scheduled retries", || async {
            let rows: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
                "SELECT workflow_id, created_at, due_at FROM actions
                 WHERE kind = 'retry' AND status = 'SCHEDULED' ORDER BY workflow_id",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            (rows.len() == 3).then_some(rows)
        })
        .await;
    let delay = |w: &str| {
        let (_, created, due) = rows.iter().find(|r| r.0 == w).unwrap();
        (*due - *created).num_milliseconds()
    };
    // The decision is taken a moment before the action is recorded.
    let slack = 5_000;
    assert!(
        (120_000 - slack..=120_000 + slack).contains(&delay("asks-2m")),
        "Retry-After: 120 honoured: {rows:?}"
    );
    assert!(
        (300_000 - slack..=300_000).contains(&delay("asks-1h")),
        "capped by max_delay: {rows:?}"
    );
    assert!(
        (0..=10_000).contains(&delay("asks-nothing")),
        "the policy's own delay: {rows:?}"
    );
    sys.stop().await;
}
