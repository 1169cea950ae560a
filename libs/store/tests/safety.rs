//! The safety layer's records, against a fresh database per test.

mod common;

use awfdrs_safety::breaker::BreakerState;
use common::Detect as _;

use awfdrs_store::{DetectBatch, NewBreakerTransition, NewRetryAttempt, RetryAttemptCounts, Store};
use chrono::{Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

fn transition(vendor: &str, revision: i64, at: chrono::DateTime<Utc>) -> NewBreakerTransition {
    NewBreakerTransition {
        vendor: vendor.to_owned(),
        from_state: BreakerState::Closed,
        to_state: BreakerState::Open,
        at,
        actor: "detector:w1".to_owned(),
        reason: "failure rate over threshold".to_owned(),
        failure_rate: Some(0.75),
        kv_revision: revision,
    }
}

/// A store, a tenant and one of its incidents.
async fn incident(pool: PgPool) -> (Store, Uuid, Uuid) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    let e = common::failure(t.id, "k1", "wf", "E1", Utc::now());
    let out = store
        .detect_batch(
            &DetectBatch { events: vec![e] },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    (store, t.id, out.opened[0].id)
}

fn attempt(tenant: Uuid, incident: Uuid, action: Uuid, n: i32) -> NewRetryAttempt {
    NewRetryAttempt {
        tenant_id: tenant,
        incident_id: incident,
        action_id: action,
        attempt: n,
        workflow_run_id: Some("run-1".to_owned()),
        vendor: Some("stripe".to_owned()),
        attempted_at: Utc::now(),
    }
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_breaker_transition_is_recorded_once_per_kv_write(pool: PgPool) {
    let store = Store::from_pool(pool);
    let at = Utc::now();
    assert!(
        store
            .record_breaker_transition(&transition("stripe", 4, at))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_breaker_transition(&transition("stripe", 4, at))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_breaker_transition(&transition("twilio", 4, at + Duration::seconds(1)))
            .await
            .unwrap()
    );
    let all = store.breaker_transitions(None, 10).await.unwrap();
    let vendors: Vec<&str> = all.iter().map(|t| t.vendor.as_str()).collect();
    assert_eq!(vendors, ["twilio", "stripe"]);
    let stripe = store.breaker_transitions(Some("stripe"), 10).await.unwrap();
    assert_eq!(stripe.len(), 1);
    assert_eq!(stripe[0].to_state, BreakerState::Open);
    assert_eq!(stripe[0].kv_revision, 4);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn an_allowed_attempt_is_counted_in_every_scope(pool: PgPool) {
    let (store, tenant, inc) = incident(pool).await;
    let first = attempt(tenant, inc, Uuid::now_v7(), 1);
    let r = store.reserve_retry_attempt(&first, |_| true).await.unwrap();
    assert!(r.reserved && !r.duplicate);
    assert_eq!(r.counts, RetryAttemptCounts::default());
    let counts = store
        .retry_counts(&first.scope(), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        counts,
        RetryAttemptCounts {
            run: 1,
            incident: 1,
            vendor_last_hour: 1
        }
    );
    // The vendor's count covers only the hour before `now`.
    let later = store
        .retry_counts(&first.scope(), Utc::now() + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(later.vendor_last_hour, 0);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_refused_attempt_is_not_recorded(pool: PgPool) {
    let (store, tenant, inc) = incident(pool).await;
    let a = attempt(tenant, inc, Uuid::now_v7(), 1);
    store.reserve_retry_attempt(&a, |_| true).await.unwrap();
    let b = attempt(tenant, inc, Uuid::now_v7(), 1);
    let r = store
        .reserve_retry_attempt(&b, |c| c.incident < 1)
        .await
        .unwrap();
    assert!(!r.reserved);
    assert_eq!(r.counts.incident, 1);
    let counts = store.retry_counts(&b.scope(), Utc::now()).await.unwrap();
    assert_eq!(counts.incident, 1);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_redelivered_attempt_is_a_duplicate_counted_once(pool: PgPool) {
    let (store, tenant, inc) = incident(pool).await;
    let a = attempt(tenant, inc, Uuid::now_v7(), 1);
    store.reserve_retry_attempt(&a, |_| true).await.unwrap();
    let r = store.reserve_retry_attempt(&a, |_| false).await.unwrap();
    assert!(r.reserved && r.duplicate);
    assert_eq!(r.counts.incident, 1);
    assert_eq!(
        store
            .retry_counts(&a.scope(), Utc::now())
            .await
            .unwrap()
            .run,
        1
    );
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn an_absent_scope_counts_zero(pool: PgPool) {
    let (store, tenant, inc) = incident(pool).await;
    let mut a = attempt(tenant, inc, Uuid::now_v7(), 1);
    a.workflow_run_id = None;
    a.vendor = None;
    store.reserve_retry_attempt(&a, |_| true).await.unwrap();
    let counts = store.retry_counts(&a.scope(), Utc::now()).await.unwrap();
    assert_eq!(
        counts,
        RetryAttemptCounts {
            run: 0,
            incident: 1,
            vendor_last_hour: 0
        }
    );
}
