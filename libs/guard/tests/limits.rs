//! Hard retry limits counted in Postgres: each scope counts what it should,
//! the first limit hit is named with its config key, concurrent
//! reservations never overshoot, and a redelivered reservation counts once.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use awfdrs_guard::{HardLimit, HardLimiter, LimitVerdict};
use awfdrs_store::{DetectBatch, DetectSettings, NewEvent, NewOutbox, NewRetryAttempt, Store};
use chrono::{DateTime, Utc};
use common::World;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hard_limit_is_counted_in_its_scope_and_named_when_hit() {
    let w = World::new().await;
    let limiter = HardLimiter::new(w.store.clone(), Arc::clone(&w.metrics));
    let limits = w.rules.current().hard_limits(); // run 3, incident 5, vendor/h 8
    let (tenant, incident) = open_incident(&w.store, "acme").await;
    let now = Utc::now();
    let attempt = |run: &str, n: i32| NewRetryAttempt {
        tenant_id: tenant,
        incident_id: incident,
        action_id: Uuid::from_u128(7),
        attempt: n,
        workflow_run_id: Some(run.to_owned()),
        vendor: Some("stripe".to_owned()),
        attempted_at: now,
    };
    for n in 1..=3 {
        assert!(
            limiter
                .reserve(&limits, &attempt("run-1", n))
                .await
                .unwrap()
                .is_within()
        );
    }
    let LimitVerdict::Exceeded(hit) = limiter
        .reserve(&limits, &attempt("run-1", 4))
        .await
        .unwrap()
    else {
        panic!("the fourth retry of one run is over max_retries_per_run");
    };
    assert_eq!(hit.exceeded.limit, HardLimit::PerRun);
    assert_eq!(
        hit.config_key,
        "vendor_config.yaml: hard_limits.max_retries_per_run"
    );

    // Another run of the same incident: the incident's cap (5) comes next.
    for n in 4..=5 {
        assert!(
            limiter
                .reserve(&limits, &attempt("run-2", n))
                .await
                .unwrap()
                .is_within()
        );
    }
    let verdict = limiter
        .check(&limits, &attempt("run-3", 6).scope(), now)
        .await
        .unwrap();
    let LimitVerdict::Exceeded(hit) = verdict else {
        panic!("incident limit")
    };
    assert_eq!(
        (hit.exceeded.limit, hit.exceeded.count, hit.exceeded.max),
        (HardLimit::PerIncident, 5, 5)
    );

    // The vendor's hourly cap (8) counts every tenant's incidents.
    let (other_tenant, other_incident) = open_incident(&w.store, "globex").await;
    let other = |n: i32, at: DateTime<Utc>| NewRetryAttempt {
        tenant_id: other_tenant,
        incident_id: other_incident,
        action_id: Uuid::from_u128(u128::try_from(n).unwrap()),
        attempt: 1,
        workflow_run_id: None,
        vendor: Some("stripe".to_owned()),
        attempted_at: at,
    };
    let old = now - chrono::Duration::minutes(61);
    assert!(
        limiter
            .reserve(&limits, &other(100, old))
            .await
            .unwrap()
            .is_within()
    );
    for n in 0..3 {
        assert!(
            limiter
                .reserve(&limits, &other(n, now))
                .await
                .unwrap()
                .is_within()
        );
    }
    let LimitVerdict::Exceeded(hit) = limiter.reserve(&limits, &other(3, now)).await.unwrap()
    else {
        panic!("5 + 3 retries to stripe within the hour reach max_retries_per_vendor_per_hour");
    };
    assert_eq!(hit.exceeded.limit, HardLimit::PerVendorPerHour);
    assert!(
        hit.to_string()
            .contains("hard_limits.max_retries_per_vendor_per_hour")
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_never_overshoot_and_a_redelivery_counts_once() {
    let w = World::new().await;
    let limiter = HardLimiter::new(w.store.clone(), Arc::clone(&w.metrics));
    let limits = w.rules.current().hard_limits();
    let (tenant, incident) = open_incident(&w.store, "acme").await;
    let attempt = |n: u128| NewRetryAttempt {
        tenant_id: tenant,
        incident_id: incident,
        action_id: Uuid::from_u128(n),
        attempt: 1,
        workflow_run_id: None,
        vendor: None,
        attempted_at: Utc::now(),
    };
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let (limiter, a) = (limiter.clone(), attempt(n));
            tokio::spawn(async move { limiter.reserve(&limits, &a).await.unwrap().is_within() })
        })
        .collect();
    let mut within = 0;
    for t in tasks {
        within += usize::from(t.await.unwrap());
    }
    assert_eq!(within, 5, "max_retries_per_incident is 5, whoever races");

    // Action 0 may or may not have won; reserving a winner again is not a
    // sixth retry.
    let scope = attempt(0).scope();
    let before = w.store.retry_counts(&scope, Utc::now()).await.unwrap();
    for n in 0..16 {
        if let LimitVerdict::Within { duplicate, .. } =
            limiter.reserve(&limits, &attempt(n)).await.unwrap()
        {
            assert!(duplicate, "only the five reserved attempts are within");
        }
    }
    assert_eq!(
        w.store.retry_counts(&scope, Utc::now()).await.unwrap(),
        before
    );
    assert_eq!(before.incident, 5);
    w.finish().await;
}

/// A tenant and one open incident of it, made the way the detector makes them.
async fn open_incident(store: &Store, slug: &str) -> (Uuid, Uuid) {
    let tenant = store
        .create_tenant(slug, &format!("key-{slug}"))
        .await
        .unwrap();
    let event = NewEvent {
        reservation: None,
        id: Uuid::new_v4(),
        tenant_id: tenant.id,
        idempotency_key: format!("{slug}-1"),
        workflow_id: "checkout".into(),
        event_type: "step_failed",
        is_failure: true,
        is_success: false,
        occurred_at: Utc::now(),
        workflow_run_id: Some("run-1".into()),
        step: Some("charge".into()),
        vendor: Some("stripe".into()),
        error_code: Some("vendor_5xx".into()),
        error_code_raw: None,
        error_message: None,
        http_status: Some(502),
        retryable: Some(true),
        attempt: Some(1),
        correlation_id: "c-1".into(),
        signature: Some(format!("{slug}:checkout:vendor_5xx")),
        body_hash: vec![1],
        source: "nats",
        metadata: None,
        open_after: None,
    };
    let batch = DetectBatch {
        events: vec![event],
    };
    let settings = DetectSettings {
        reopen_window_secs: 0,
        auto_resolve_successes: 0,
    };
    let outbox = |o: &awfdrs_store::OpenedIncident| NewOutbox {
        tenant_id: o.tenant_id,
        subject: format!("t.incidents.{slug}.opened"),
        msg_id: o.id.to_string(),
        payload: serde_json::json!({}),
        correlation_id: None,
    };
    let mut work = store.begin_work().await.unwrap();
    let done = work.detect(&batch, settings).await.unwrap();
    work.outbox(done.opened.iter().map(outbox).collect())
        .await
        .unwrap();
    let _ = work.commit().await.unwrap();
    (tenant.id, done.opened[0].id)
}
