//! The outbox, against a fresh database per test.

mod common;

use common::Detect as _;

use awfdrs_store::{DetectBatch, NewOutbox, Store, Tenant};
use chrono::Utc;
use sqlx::PgPool;

/// Opens one incident and returns its outbox row id.
async fn one_row(store: &Store, t: &Tenant, key: &str) -> i64 {
    let e = common::failure(t.id, key, &format!("wf-{key}"), "E1", Utc::now());
    let (_, committed) = store
        .detect_committed(&DetectBatch { events: vec![e] })
        .await
        .unwrap();
    committed.outbox[0].id
}

async fn age_all(pool: &PgPool) {
    sqlx::query("UPDATE outbox SET created_at = created_at - interval '1 hour'")
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn only_rows_older_than_the_age_are_stale(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let old = one_row(&store, &t, "k1").await;
    age_all(&pool).await;
    let _young = one_row(&store, &t, "k2").await;
    let stale: Vec<i64> = store
        .stale_outbox(60_000, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stale, [old]);
    assert_eq!(store.outbox_backlog().await.unwrap(), 2);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn stale_rows_come_oldest_first_up_to_the_limit(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let a = one_row(&store, &t, "k1").await;
    let b = one_row(&store, &t, "k2").await;
    one_row(&store, &t, "k3").await;
    age_all(&pool).await;
    let stale: Vec<i64> = store
        .stale_outbox(1000, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stale, [a, b]);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_published_row_is_neither_stale_nor_backlog(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let a = one_row(&store, &t, "k1").await;
    let b = one_row(&store, &t, "k2").await;
    age_all(&pool).await;
    store.mark_published(&[a]).await.unwrap();
    store.mark_published(&[a]).await.unwrap();
    let stale: Vec<i64> = store
        .stale_outbox(1000, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stale, [b]);
    assert_eq!(store.outbox_backlog().await.unwrap(), 1);
}

fn message(t: &Tenant, msg_id: &str) -> NewOutbox {
    NewOutbox {
        tenant_id: t.id,
        subject: "test.subject".to_owned(),
        msg_id: msg_id.to_owned(),
        payload: serde_json::json!({ "id": msg_id }),
        correlation_id: None,
    }
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_commit_hands_over_exactly_the_rows_it_wrote(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let mut work = store.begin_work().await.unwrap();
    work.outbox(vec![message(&t, "m1"), message(&t, "m2")])
        .await
        .unwrap();
    let first = work.commit().await.unwrap().outbox;
    let ids: Vec<&str> = first.iter().map(|r| r.msg_id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2"]);
    assert_eq!(first[1].payload, serde_json::json!({ "id": "m2" }));

    // The same effect announced again (a redelivery) writes nothing new,
    // so nothing is handed over twice.
    let mut work = store.begin_work().await.unwrap();
    work.outbox(vec![message(&t, "m2"), message(&t, "m3")])
        .await
        .unwrap();
    let second = work.commit().await.unwrap().outbox;
    let ids: Vec<&str> = second.iter().map(|r| r.msg_id.as_str()).collect();
    assert_eq!(ids, ["m3"]);
    assert_eq!(store.outbox_backlog().await.unwrap(), 3);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn work_dropped_before_its_commit_leaves_no_row(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let mut work = store.begin_work().await.unwrap();
    work.outbox(vec![message(&t, "m1")]).await.unwrap();
    drop(work);
    assert_eq!(store.outbox_backlog().await.unwrap(), 0);
}
