//! The gateway's idempotency keys, against a fresh database per test.

mod common;

use awfdrs_store::{Claimed, KeyClaim};
use sqlx::PgPool;
use uuid::Uuid;

fn claim(key: &str, body: &[u8]) -> KeyClaim {
    KeyClaim {
        key: key.to_owned(),
        event_id: Uuid::now_v7(),
        body_hash: body.to_vec(),
        correlation_id: format!("corr-{key}"),
        reservation: Uuid::now_v7(),
    }
}

async fn keys(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT idempotency_key FROM ingest_keys ORDER BY idempotency_key")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_new_key_is_new_and_stays_reserved_after_commit(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let (answers, reservation) = store
        .reserve_keys(t.id, &[claim("k1", b"a")])
        .await
        .unwrap();
    assert_eq!(answers, [Claimed::New]);
    reservation.commit(&[]).await.unwrap();
    assert_eq!(keys(&pool).await, ["k1"]);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_key_seen_with_the_same_body_is_a_duplicate_naming_the_first_event(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    let first = claim("k1", b"a");
    let (_, r) = store
        .reserve_keys(t.id, std::slice::from_ref(&first))
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    let (answers, r) = store
        .reserve_keys(t.id, &[claim("k1", b"a")])
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    assert_eq!(
        answers,
        [Claimed::Duplicate {
            event_id: first.event_id,
            correlation_id: first.correlation_id,
        }]
    );
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_key_seen_with_another_body_is_a_conflict(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    let first = claim("k1", b"a");
    let (_, r) = store
        .reserve_keys(t.id, std::slice::from_ref(&first))
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    let (answers, r) = store
        .reserve_keys(t.id, &[claim("k1", b"b"), claim("k2", b"c")])
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    assert_eq!(
        answers,
        [
            Claimed::Conflict {
                event_id: first.event_id
            },
            Claimed::New
        ]
    );
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn keys_are_scoped_by_tenant(pool: PgPool) {
    let (store, a) = common::store_with_tenant(pool, "acme").await;
    let b = store.create_tenant("other", "k-other").await.unwrap();
    let (_, r) = store
        .reserve_keys(a.id, &[claim("k1", b"a")])
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    let (answers, r) = store
        .reserve_keys(b.id, &[claim("k1", b"b")])
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    assert_eq!(answers, [Claimed::New]);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn committing_with_failed_keys_releases_only_those(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let (_, r) = store
        .reserve_keys(
            t.id,
            &[claim("k1", b"a"), claim("k2", b"b"), claim("k3", b"c")],
        )
        .await
        .unwrap();
    r.commit(&["k2".to_owned()]).await.unwrap();
    assert_eq!(keys(&pool).await, ["k1", "k3"]);
    let (answers, r) = store
        .reserve_keys(t.id, &[claim("k2", b"x")])
        .await
        .unwrap();
    r.rollback().await.unwrap();
    assert_eq!(answers, [Claimed::New]);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_rolled_back_reservation_leaves_no_key(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let (_, r) = store
        .reserve_keys(t.id, &[claim("k1", b"a")])
        .await
        .unwrap();
    r.rollback().await.unwrap();
    assert!(keys(&pool).await.is_empty());
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_concurrent_reservation_of_the_same_key_waits_and_then_sees_it(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    let first = claim("k1", b"a");
    let (_, held) = store
        .reserve_keys(t.id, std::slice::from_ref(&first))
        .await
        .unwrap();
    let second = tokio::spawn({
        let store = store.clone();
        async move { store.reserve_keys(t.id, &[claim("k1", b"a")]).await }
    });
    held.commit(&[]).await.unwrap();
    let (answers, r) = second.await.unwrap().unwrap();
    r.commit(&[]).await.unwrap();
    assert_eq!(
        answers,
        [Claimed::Duplicate {
            event_id: first.event_id,
            correlation_id: first.correlation_id,
        }]
    );
}
