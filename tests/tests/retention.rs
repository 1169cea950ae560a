//! Retention: idempotency keys and published outbox rows past the
//! retention the database holds are deleted by the detector's retention
//! task, and nothing younger or unpublished is; events go by whole day
//! partitions, which the same task makes ahead of time; `awfdrs retention`
//! shows and changes it, and refuses less than the contract's 7 days for
//! keys and a day for events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_tests::{System, eventually};
use uuid::Uuid;

async fn key(sys: &System, tenant: Uuid, name: &str, age_days: i64) {
    sqlx::query(
        "INSERT INTO ingest_keys (tenant_id, idempotency_key, event_id, body_hash, correlation_id, created_at)
         VALUES ($1, $2, $3, '\\x00', 'c', now() - make_interval(days => $4::int))",
    )
    .bind(tenant)
    .bind(name)
    .bind(Uuid::now_v7())
    .bind(i32::try_from(age_days).unwrap())
    .execute(sys.ctx.store.pool())
    .await
    .unwrap();
}

async fn outbox(sys: &System, tenant: Uuid, id: &str, age_hours: i64, published: bool) {
    sqlx::query(
        "INSERT INTO outbox (tenant_id, subject, msg_id, payload, created_at, published_at)
         VALUES ($1, 'x', $2, '{}', now() - make_interval(hours => $3::int),
                 CASE WHEN $4 THEN now() - make_interval(hours => $3::int) END)",
    )
    .bind(tenant)
    .bind(id)
    .bind(i32::try_from(age_hours).unwrap())
    .bind(published)
    .execute(sys.ctx.store.pool())
    .await
    .unwrap();
}

/// What a refused `awfdrs` command says on stderr.
async fn refused(sys: &System, args: &[&str]) -> String {
    let out = tokio::process::Command::new(awfdrs_tests::awfdrs_bin())
        .args(args)
        .env_clear()
        .envs(sys.world.env(&[]))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn what_is_past_its_retention_is_deleted_and_nothing_else() {
    let sys = System::start(&[("AWFDRS__RETENTION__SWEEP_MS", "200")]).await;
    let (tenant, _) = sys.tenant("acme").await;
    // 7 days at least, for keys.
    let out = tokio::process::Command::new(awfdrs_tests::awfdrs_bin())
        .args(["retention", "set", "ingest_keys", "6d"])
        .env_clear()
        .envs(sys.world.env(&[]))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least"), "{err}");
    let out = refused(&sys, &["retention", "set", "events", "12h"]).await;
    assert!(out.contains("events must be kept at least"), "{out}");
    let out = refused(&sys, &["retention", "set", "events_p1", "2d"]).await;
    assert!(out.contains("ingest_keys, outbox or events"), "{out}");
    let out = awfdrs_tests::cli(&sys.world, &["retention", "set", "ingest_keys", "7d"]).await;
    assert!(
        out.contains("ingest_keys") && out.contains("operator:"),
        "{out}"
    );
    let out = awfdrs_tests::cli(&sys.world, &["retention", "set", "outbox", "2h"]).await;
    assert!(out.contains("outbox"), "{out}");

    key(&sys, tenant.id, "old", 8).await;
    key(&sys, tenant.id, "young", 6).await;
    outbox(&sys, tenant.id, "old-published", 3, true).await;
    outbox(&sys, tenant.id, "old-unpublished", 3, false).await;
    outbox(&sys, tenant.id, "young-published", 1, true).await;

    let pool = sys.ctx.store.pool().clone();
    eventually(Duration::from_secs(30), "the old rows pruned", || async {
        let keys: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM ingest_keys WHERE tenant_id = $1 AND idempotency_key = 'old'",
        )
        .bind(tenant.id)
        .fetch_one(&pool)
        .await
        .unwrap();
        let rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE msg_id = 'old-published'")
                .fetch_one(&pool)
                .await
                .unwrap();
        (keys == 0 && rows == 0).then_some(())
    })
    .await;
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT idempotency_key FROM ingest_keys WHERE tenant_id = $1 ORDER BY 1",
    )
    .bind(tenant.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(keys, ["young"]);
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT msg_id FROM outbox WHERE msg_id IN ('old-unpublished', 'young-published') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows, ["old-unpublished", "young-published"]);
    let out = awfdrs_tests::cli(&sys.world, &["retention", "show"]).await;
    assert!(out.contains("deleted)"), "{out}");
    sys.stop().await;
}

#[tokio::test]
async fn a_key_reused_past_its_retention_is_new_and_its_other_body_stored() {
    let sys = System::start(&[("AWFDRS__RETENTION__SWEEP_MS", "200")]).await;
    let (tenant, api_key) = sys.tenant("acme").await;
    let body = awfdrs_tests::failure("order-1", "checkout", "card_declined");
    let (status, _) = sys.post("/api/v1/events", &api_key, &body).await;
    assert_eq!(status, 202);
    let pool = sys.ctx.store.pool().clone();
    let stored = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE tenant_id = $1")
            .bind(tenant.id)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    eventually(Duration::from_secs(30), "stored", || async {
        (stored().await == 1).then_some(())
    })
    .await;
    sqlx::query(
        "UPDATE ingest_keys SET created_at = now() - interval '31 days' WHERE tenant_id = $1",
    )
    .bind(tenant.id)
    .execute(&pool)
    .await
    .unwrap();
    eventually(Duration::from_secs(30), "the key pruned", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ingest_keys WHERE tenant_id = $1")
            .bind(tenant.id)
            .fetch_one(&pool)
            .await
            .unwrap();
        (n == 0).then_some(())
    })
    .await;
    // Past its retention, a key is answered as new, and the events table
    // does not decide keys: the other body is stored as a new event.
    let mut other = body.clone();
    other["error"]["message"] = serde_json::json!("something else");
    let (status, answer) = sys.post("/api/v1/events", &api_key, &other).await;
    assert_eq!(status, 202, "{answer}");
    eventually(Duration::from_secs(30), "stored again", || async {
        (stored().await == 2).then_some(())
    })
    .await;
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT body_hash FROM events WHERE tenant_id = $1 ORDER BY received_at",
    )
    .bind(tenant.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        hashes,
        [
            awfdrs_tests::body_hash(&body),
            awfdrs_tests::body_hash(&other)
        ]
    );
    sys.stop().await;
}

/// The day partition `days` ago (negative: ahead) would be called.
fn partition(days: i64) -> String {
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(days);
    format!("events_p{}", day.format("%Y%m%d"))
}

/// An event received `age_days` ago, written as the detector would.
async fn event(sys: &System, tenant: Uuid, key: &str, age_days: i32) {
    sqlx::query(
        "INSERT INTO events (id, tenant_id, idempotency_key, workflow_id, event_type, occurred_at,
             received_at, correlation_id, body_hash, source)
         VALUES ($1, $2, $3, 'wf', 'step_succeeded', now() - make_interval(days => $4),
                 now() - make_interval(days => $4), 'c', '\\x00', 'nats')",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(key)
    .bind(age_days)
    .execute(sys.ctx.store.pool())
    .await
    .unwrap();
}

async fn partition_of(sys: &System, tenant: Uuid, key: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT tableoid::regclass::text FROM events WHERE tenant_id = $1 AND idempotency_key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_optional(sys.ctx.store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn events_live_in_day_partitions_made_ahead_and_go_a_whole_day_past_their_retention() {
    let sys = System::start(&[
        ("AWFDRS__RETENTION__SWEEP_MS", "200"),
        ("AWFDRS__RETENTION__PARTITIONS_AHEAD_DAYS", "5"),
    ])
    .await;
    let (tenant, _) = sys.tenant("acme").await;
    let store = sys.ctx.store.clone();
    eventually(Duration::from_secs(30), "partitions made ahead", || async {
        let parts = store.event_partitions().await.unwrap();
        (0..=5)
            .all(|d| parts.contains(&partition(-d)))
            .then_some(())
    })
    .await;
    let parts = store.event_partitions().await.unwrap();
    assert_eq!(parts.last().map(String::as_str), Some("events_default"));

    let out = awfdrs_tests::cli(&sys.world, &["retention", "set", "events", "20d"]).await;
    assert!(out.contains("events") && out.contains("20d"), "{out}");
    // Days without a partition land in the default one, then move to
    // their own; the one past the retention goes whole.
    event(&sys, tenant.id, "old", 25).await;
    event(&sys, tenant.id, "kept", 10).await;
    event(&sys, tenant.id, "today", 0).await;
    // The vendors' minutes go with the events.
    for age_days in [25, 10] {
        sqlx::query(
            "INSERT INTO vendor_minutes (vendor, minute, tenant_id, workflow_id, calls, failures,
                 successes)
             VALUES ('stripe', date_trunc('minute', now() - make_interval(days => $1), 'UTC'),
                     $2, 'wf', 1, 0, 1)",
        )
        .bind(age_days)
        .bind(tenant.id)
        .execute(store.pool())
        .await
        .unwrap();
    }
    assert_eq!(
        partition_of(&sys, tenant.id, "today").await,
        Some(partition(0))
    );
    eventually(
        Duration::from_secs(30),
        "the old partition dropped",
        || async {
            let parts = store.event_partitions().await.unwrap();
            let default: i64 = sqlx::query_scalar("SELECT count(*) FROM events_default")
                .fetch_one(store.pool())
                .await
                .unwrap();
            (!parts.contains(&partition(25)) && parts.contains(&partition(10)) && default == 0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(partition_of(&sys, tenant.id, "old").await, None);
    assert_eq!(
        partition_of(&sys, tenant.id, "kept").await,
        Some(partition(10))
    );
    assert_eq!(sys.rows("events", tenant.id).await, 2);
    eventually(
        Duration::from_secs(30),
        "the minutes past the events' retention deleted, the others kept",
        || async {
            let minutes: Vec<i32> = sqlx::query_scalar(
                "SELECT extract(day FROM now() - minute)::int FROM vendor_minutes
                 WHERE tenant_id = $1",
            )
            .bind(tenant.id)
            .fetch_all(store.pool())
            .await
            .unwrap();
            (minutes == [10]).then_some(())
        },
    )
    .await;

    // Still append-only, partition by partition.
    for sql in [
        format!("DELETE FROM {}", partition(10)),
        format!("TRUNCATE {}", partition(10)),
        "UPDATE events SET step = 'x'".to_owned(),
    ] {
        let err = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(store.pool())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let out = awfdrs_tests::cli(&sys.world, &["retention", "show"]).await;
    let line = out.lines().find(|l| l.starts_with("events")).unwrap();
    assert!(line.contains("(1 deleted)"), "{out}");
    let metrics = sys
        .http
        .get(format!("{}/metrics", sys.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("awfdrs_pruned_rows_total{table=\"events\"} 1"),
        "{metrics}"
    );
    sys.stop().await;
}

#[tokio::test]
async fn a_key_whose_event_is_gone_but_not_its_row_is_still_a_duplicate() {
    let sys = System::start(&[]).await;
    let (tenant, api_key) = sys.tenant("acme").await;
    let body = awfdrs_tests::failure("order-1", "checkout", "card_declined");
    let (status, first) = sys.post("/api/v1/events", &api_key, &body).await;
    assert_eq!(status, 202);
    eventually(Duration::from_secs(30), "stored", || async {
        (sys.rows("events", tenant.id).await == 1).then_some(())
    })
    .await;
    // Its partition dropped, as the events retention would.
    let part = partition_of(&sys, tenant.id, "order-1").await.unwrap();
    let pool = sys.ctx.store.pool();
    for sql in [
        format!("ALTER TABLE events DETACH PARTITION {part}"),
        format!("DROP TABLE {part}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .unwrap();
    }
    let (status, again) = sys.post("/api/v1/events", &api_key, &body).await;
    assert_eq!((status, &again["event_id"]), (200, &first["event_id"]));
    let mut other = body.clone();
    other["error"]["message"] = serde_json::json!("something else");
    let (status, _) = sys.post("/api/v1/events", &api_key, &other).await;
    assert_eq!(status, 409);
    // Straight over NATS, the same body is a duplicate too: not stored.
    sys.ctx
        .bus
        .publish(awfdrs_bus::Outgoing {
            subject: sys.ns().events_subject("acme", "checkout"),
            msg_id: Uuid::new_v4().to_string(),
            correlation_id: None,
            headers: Vec::new(),
            payload: bytes::Bytes::from(body.to_string()),
        })
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "settled", || async {
        (sys.ctx
            .bus
            .consumer_backlog(awfdrs_bus::Stage::Detector)
            .await
            .unwrap()
            == 0
            && sys.ctx.bus.events_stored().await.unwrap() == 2)
            .then_some(())
    })
    .await;
    assert_eq!(sys.rows("events", tenant.id).await, 0);
    sys.stop().await;
}
