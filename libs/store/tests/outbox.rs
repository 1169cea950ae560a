//! The outbox, against a fresh database per test.

mod common;

use awfdrs_store::{DetectBatch, Store, Tenant};
use chrono::Utc;
use sqlx::PgPool;

/// Opens one incident and returns its outbox row id.
async fn one_row(store: &Store, t: &Tenant, key: &str) -> i64 {
    let e = common::failure(t.id, key, &format!("wf-{key}"), "E1", Utc::now());
    let out = store
        .detect_batch(
            &DetectBatch { events: vec![e] },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    out.outbox_ids[0]
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
async fn a_published_row_is_neither_stale_nor_fetched_nor_backlog(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let a = one_row(&store, &t, "k1").await;
    let b = one_row(&store, &t, "k2").await;
    age_all(&pool).await;
    store.mark_published(&[a]).await.unwrap();
    store.mark_published(&[a]).await.unwrap();
    let fetched: Vec<i64> = store
        .outbox_rows(&[a, b])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(fetched, [b]);
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
