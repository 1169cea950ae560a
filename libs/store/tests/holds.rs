//! Held retries: which are offered for release, in which order, and that
//! each ends once, against a fresh database per test.

mod common;

use awfdrs_domain::decision::ActionKind;
use awfdrs_domain::{ActionStatus, action_id};
use awfdrs_store::{DetectBatch, NewAction, Store, Tenant, TenantMode};
use chrono::Utc;
use common::Detect as _;
use sqlx::PgPool;
use uuid::Uuid;

/// An incident of `t` on `workflow`, opened by one failure.
async fn incident(store: &Store, t: &Tenant, workflow: &str) -> Uuid {
    let events = vec![common::failure(
        t.id,
        workflow,
        workflow,
        "timeout",
        Utc::now(),
    )];
    let out = store
        .detect_batch(
            &DetectBatch { events },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    out.opened[0].id
}

/// Records a hold of attempt 1 on `incident`, `shadow` or not.
async fn hold(store: &Store, t: &Tenant, incident: Uuid, shadow: bool) -> Uuid {
    let a = NewAction {
        id: action_id(incident, ActionKind::Hold, 1),
        tenant_id: t.id,
        incident_id: incident,
        decision_id: None,
        kind: ActionKind::Hold,
        status: ActionStatus::Pending,
        attempt: 1,
        shadow,
        due_at: None,
        reason: "the breaker of stripe is open".to_owned(),
        limit_key: None,
        vendor: Some("stripe".to_owned()),
        workflow_id: "w".to_owned(),
        workflow_run_id: None,
        step: Some("charge".to_owned()),
        idempotency_key: None,
        correlation_id: "c".to_owned(),
    };
    let mut work = store.begin_work().await.unwrap();
    assert!(work.record_action(&a, "coordinator").await.unwrap());
    let _ = work.commit().await.unwrap();
    a.id
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn held_retries_are_offered_oldest_first_for_tenants_in_auto_mode_only(pool: PgPool) {
    let (store, acme) = common::store_with_tenant(pool.clone(), "acme").await;
    let paused = store.create_tenant("paused", "key-paused").await.unwrap();
    let first = hold(&store, &acme, incident(&store, &acme, "w1").await, false).await;
    let second = hold(&store, &acme, incident(&store, &acme, "w2").await, false).await;
    hold(&store, &acme, incident(&store, &acme, "w3").await, true).await;
    hold(
        &store,
        &paused,
        incident(&store, &paused, "w1").await,
        false,
    )
    .await;
    let mode = TenantMode {
        mode: "auto".to_owned(),
        paused: true,
    };
    store
        .set_tenant_mode(paused.id, &mode, "test", "maintenance")
        .await
        .unwrap();

    assert_eq!(store.held_vendors().await.unwrap(), ["stripe"]);
    let held: Vec<Uuid> = store
        .held_retries("stripe", 10)
        .await
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(
        held,
        [first, second],
        "no shadow hold, none of a paused tenant"
    );
    let one = store.held_retries("stripe", 1).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].tenant.as_str(), one[0].attempt), ("acme", 1));
    assert!(store.held_retries("adyen", 10).await.unwrap().is_empty());
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_hold_ends_once_with_its_timeline_entry(pool: PgPool) {
    let (store, acme) = common::store_with_tenant(pool.clone(), "acme").await;
    hold(&store, &acme, incident(&store, &acme, "w1").await, false).await;
    let h = store.held_retries("stripe", 10).await.unwrap().remove(0);
    for expect in [true, false] {
        let mut work = store.begin_work().await.unwrap();
        let ended = work
            .end_hold(
                &h,
                ActionStatus::Succeeded,
                "coordinator",
                "released: breaker CLOSED",
            )
            .await
            .unwrap();
        assert_eq!(ended, expect);
        let _ = work.commit().await.unwrap();
    }
    assert!(store.held_vendors().await.unwrap().is_empty());
    let timeline: Vec<(Option<String>, String, String)> = sqlx::query_as(
        "SELECT from_status, to_status, reason FROM action_transitions WHERE action_id = $1 ORDER BY id",
    )
    .bind(h.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(timeline.len(), 2, "{timeline:?}");
    assert_eq!(
        timeline[1],
        (
            Some("PENDING".to_owned()),
            "SUCCEEDED".to_owned(),
            "released: breaker CLOSED".to_owned()
        )
    );
}
