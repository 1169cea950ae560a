//! The arbiter of idempotency keys, seen through `detect_batch`, against a
//! fresh database per test.

mod common;

use common::Detect as _;

use awfdrs_store::{DetectBatch, KeyClaim};
use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

async fn held_by(pool: &PgPool, key: &str) -> Option<(Vec<u8>, Option<Uuid>)> {
    sqlx::query_as("SELECT body_hash, reservation FROM ingest_keys WHERE idempotency_key = $1")
        .bind(key)
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn events(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_nats_event_takes_its_key(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let e = common::failure(t.id, "k1", "wf", "E1", Utc::now());
    let batch = DetectBatch {
        events: vec![e.clone()],
    };
    let out = store
        .detect_batch(&batch, common::SETTINGS, &common::outbox_for)
        .await
        .unwrap();
    assert_eq!(out.inserted, [0]);
    assert_eq!(held_by(&pool, "k1").await, Some((e.body_hash, None)));
    assert_eq!(events(&pool).await, 1);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn an_http_event_is_stored_only_under_its_own_reservation(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let ours = Uuid::now_v7();
    let mut e = common::failure(t.id, "k1", "wf", "E1", Utc::now());
    e.source = "http";
    e.reservation = Some(ours);
    let (_, r) = store
        .reserve_keys(&[KeyClaim {
            tenant: t.id,
            key: "k1".to_owned(),
            event_id: e.id,
            body_hash: e.body_hash.clone(),
            correlation_id: e.correlation_id.clone(),
            reservation: ours,
        }])
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();

    let mut stale = e.clone();
    stale.reservation = Some(Uuid::now_v7());
    let out = store
        .detect_batch(
            &DetectBatch {
                events: vec![stale],
            },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    assert_eq!(out.abandoned, [0]);
    assert_eq!(events(&pool).await, 0);

    let out = store
        .detect_batch(
            &DetectBatch {
                events: vec![e.clone()],
            },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    assert_eq!(out.inserted, [0]);
    assert_eq!(events(&pool).await, 1);

    // Delivered again, and the same body straight over NATS: the key's row
    // says its event is stored, so both are duplicates.
    let mut over_nats = e.clone();
    over_nats.source = "nats";
    over_nats.reservation = None;
    let out = store
        .detect_batch(
            &DetectBatch {
                events: vec![e, over_nats],
            },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    assert!(out.inserted.is_empty());
    assert_eq!(out.duplicates, [0, 1]);
    assert_eq!(events(&pool).await, 1);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_nats_event_of_a_reserved_body_stores_it_once(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let ours = Uuid::now_v7();
    let over_nats = common::failure(t.id, "k1", "wf", "E1", Utc::now());
    let (_, r) = store
        .reserve_keys(&[KeyClaim {
            tenant: t.id,
            key: "k1".to_owned(),
            event_id: over_nats.id,
            body_hash: over_nats.body_hash.clone(),
            correlation_id: over_nats.correlation_id.clone(),
            reservation: ours,
        }])
        .await
        .unwrap();
    r.commit(&[]).await.unwrap();
    let mut over_http = over_nats.clone();
    over_http.source = "http";
    over_http.reservation = Some(ours);
    for (e, stored) in [(over_nats, true), (over_http, false)] {
        let out = store
            .detect_batch(
                &DetectBatch { events: vec![e] },
                common::SETTINGS,
                &common::outbox_for,
            )
            .await
            .unwrap();
        assert_eq!(out.inserted.len(), usize::from(stored));
        assert_eq!(out.duplicates.len(), usize::from(!stored));
    }
    assert_eq!(events(&pool).await, 1);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_conflicting_body_is_refused_and_a_repeat_is_a_duplicate(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let first = common::failure(t.id, "k1", "wf", "E1", Utc::now());
    store
        .detect_batch(
            &DetectBatch {
                events: vec![first.clone()],
            },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    let mut other = common::failure(t.id, "k1", "wf", "E1", Utc::now());
    other.body_hash = b"another body".to_vec();
    let out = store
        .detect_batch(
            &DetectBatch {
                events: vec![other, first.clone()],
            },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    assert_eq!(out.conflicts, [0]);
    assert_eq!(out.duplicates, [1]);
    assert!(out.inserted.is_empty());
    assert_eq!(held_by(&pool, "k1").await, Some((first.body_hash, None)));
    assert_eq!(events(&pool).await, 1);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn an_abandoned_reservation_is_dropped_and_leaves_no_row(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let mut e = common::failure(t.id, "k1", "wf", "E1", Utc::now());
    e.source = "http";
    e.reservation = Some(Uuid::now_v7());
    // The gateway's reservation was rolled back: the key has no row.
    let out = store
        .detect_batch(
            &DetectBatch { events: vec![e] },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    assert_eq!(out.abandoned, [0]);
    assert!(out.opened.is_empty());
    assert_eq!(held_by(&pool, "k1").await, None);
    assert_eq!(events(&pool).await, 0);
}
