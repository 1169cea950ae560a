//! The gateway's idempotency keys, against a fresh database per test.

mod common;

use awfdrs_store::{Claimed, KeyClaim};
use sqlx::PgPool;
use uuid::Uuid;

fn claim(tenant: Uuid, key: &str, body: &[u8]) -> KeyClaim {
    KeyClaim {
        tenant,
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
        .reserve_keys(&[claim(t.id, "k1", b"a")])
        .await
        .unwrap();
    assert_eq!(answers, [Claimed::New]);
    reservation.commit(&[]).await.unwrap();
    assert_eq!(keys(&pool).await, ["k1"]);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_key_seen_with_the_same_body_is_a_duplicate_naming_the_first_event(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    let first = claim(t.id, "k1", b"a");
    let (_, r) = store
        .reserve_keys(std::slice::from_ref(&first))
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    let (answers, r) = store
        .reserve_keys(&[claim(t.id, "k1", b"a")])
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
    let first = claim(t.id, "k1", b"a");
    let (_, r) = store
        .reserve_keys(std::slice::from_ref(&first))
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    let (answers, r) = store
        .reserve_keys(&[claim(t.id, "k1", b"b"), claim(t.id, "k2", b"c")])
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
        .reserve_keys(&[claim(a.id, "k1", b"a")])
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    let (answers, r) = store
        .reserve_keys(&[claim(b.id, "k1", b"b")])
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    assert_eq!(answers, [Claimed::New]);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn committing_with_failed_keys_releases_only_those(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let (_, r) = store
        .reserve_keys(&[
            claim(t.id, "k1", b"a"),
            claim(t.id, "k2", b"b"),
            claim(t.id, "k3", b"c"),
        ])
        .await
        .unwrap();
    r.commit(&[(t.id, "k2".to_owned())]).await.unwrap();
    assert_eq!(keys(&pool).await, ["k1", "k3"]);
    let (answers, r) = store
        .reserve_keys(&[claim(t.id, "k2", b"x")])
        .await
        .unwrap();
    r.rollback().await.unwrap();
    assert_eq!(answers, [Claimed::New]);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_rolled_back_reservation_leaves_no_key(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let (_, r) = store
        .reserve_keys(&[claim(t.id, "k1", b"a")])
        .await
        .unwrap();
    r.rollback().await.unwrap();
    assert!(keys(&pool).await.is_empty());
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_concurrent_reservation_of_the_same_key_waits_and_then_sees_it(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    let first = claim(t.id, "k1", b"a");
    let (_, held) = store
        .reserve_keys(std::slice::from_ref(&first))
        .await
        .unwrap();
    let second = tokio::spawn({
        let store = store.clone();
        async move { store.reserve_keys(&[claim(t.id, "k1", b"a")]).await }
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

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn one_reservation_holds_keys_of_several_tenants_and_releases_only_the_failed_pair(
    pool: PgPool,
) {
    let (store, a) = common::store_with_tenant(pool.clone(), "acme").await;
    let b = store.create_tenant("other", "k-other").await.unwrap();
    let (_, r) = store
        .reserve_keys(&[claim(a.id, "k0", b"a")])
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    let (answers, r) = store
        .reserve_keys(&[
            claim(a.id, "k0", b"z"),
            claim(a.id, "k1", b"a"),
            claim(b.id, "k0", b"b"),
            claim(b.id, "k1", b"c"),
        ])
        .await
        .unwrap();
    assert!(matches!(answers[0], Claimed::Conflict { .. }));
    assert_eq!(answers[1..], [Claimed::New, Claimed::New, Claimed::New]);
    r.commit(&[(b.id, "k1".to_owned())]).await.unwrap();
    let held: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.slug, k.idempotency_key FROM ingest_keys k JOIN tenants t ON t.id = k.tenant_id
         ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let held: Vec<(&str, &str)> = held.iter().map(|(t, k)| (t.as_str(), k.as_str())).collect();
    assert_eq!(held, [("acme", "k0"), ("acme", "k1"), ("other", "k0")]);
}
