//! Retention: idempotency keys and published outbox rows past the
//! retention the database holds are deleted by the detector's retention
//! task, and nothing younger or unpublished is; `awfdrs retention`
//! shows and changes it, and refuses less than the contract's 7 days for
//! keys.

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
async fn a_key_reused_past_its_retention_with_another_body_is_dead_lettered_not_stored() {
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
    // Past its retention, a key is answered as new; the event it named is
    // still stored, so another body is dead-lettered as a reused key and
    // the first event stays as it was.
    let mut other = body.clone();
    other["error"]["message"] = serde_json::json!("something else");
    let (status, answer) = sys.post("/api/v1/events", &api_key, &other).await;
    assert_eq!(status, 202, "{answer}");
    let reason: String = eventually(Duration::from_secs(30), "dead-lettered", || async {
        sqlx::query_scalar("SELECT reason FROM dead_letters")
            .fetch_optional(&pool)
            .await
            .unwrap()
    })
    .await;
    assert!(
        reason.contains("already used with a different body"),
        "{reason}"
    );
    assert_eq!(stored().await, 1, "no second event");
    let hash: Vec<u8> = sqlx::query_scalar("SELECT body_hash FROM events WHERE tenant_id = $1")
        .bind(tenant.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(hash, awfdrs_tests::body_hash(&body));
    sys.stop().await;
}
