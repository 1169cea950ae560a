//! The facts an analysis reads and the decisions it records, against a
//! fresh database per test.

mod common;

use awfdrs_domain::IncidentStatus;
use awfdrs_domain::decision::DecisionV1;
use awfdrs_store::{DetectBatch, FactWindows, Store, Tenant};
use chrono::{Duration, Utc};
use common::Detect as _;
use sqlx::PgPool;
use uuid::Uuid;

const WINDOWS: FactWindows = FactWindows {
    vendor_secs: 3600,
    lookback_secs: 86_400,
    candidates: 50,
};

async fn detect(store: &Store, events: Vec<awfdrs_store::NewEvent>) -> awfdrs_store::DetectOutcome {
    store
        .detect_batch(
            &DetectBatch { events },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap()
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn the_facts_show_the_signature_inputs_and_the_failures_signals(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let now = Utc::now();
    // Two successes of the step before it fails.
    detect(
        &store,
        vec![
            common::success(t.id, "s1", "checkout", now - Duration::minutes(10)),
            common::success(t.id, "s2", "checkout", now - Duration::minutes(9)),
        ],
    )
    .await;
    let mut a = common::failure(t.id, "f1", "checkout", "e1", now);
    a.metadata = Some(r#"{"retry_after": "30", "release": "v2"}"#.to_owned());
    a.http_status = Some(429);
    let mut b = common::failure(t.id, "f2", "checkout", "e1", now + Duration::seconds(1));
    b.retryable = Some(false);
    b.metadata = Some(r#"{"Retry-After": "120", "release": "v2"}"#.to_owned());
    let out = detect(&store, vec![a.clone(), b.clone()]).await;
    let id = out.opened[0].id;

    let facts = store
        .analysis_facts(Some(t.id), id, WINDOWS)
        .await
        .unwrap()
        .expect("the incident's facts");
    let inputs = &facts.incident.inputs;
    assert_eq!(inputs.tenant, "acme");
    assert_eq!(inputs.error_code, "e1");
    assert_eq!(inputs.error_code_raw, "E1", "the code as sent");
    assert_eq!(inputs.open_after, None);
    assert_eq!(inputs.reopen_window.key, "detector.reopen_window_secs");
    assert_eq!(facts.status, "NEW");
    let f = &facts.failures;
    assert_eq!(f.count, 2);
    assert_eq!(f.sample_event_ids, [a.id, b.id], "oldest first");
    assert_eq!((f.producer_retryable, f.producer_not_retryable), (1, 1));
    assert_eq!(f.retry_after_secs, Some(120), "the largest Retry-After");
    assert_eq!(f.distinct_runs, 2);
    let statuses: Vec<(i32, i64)> = f
        .http_statuses
        .iter()
        .map(|s| (s.status, s.count))
        .collect();
    assert_eq!(statuses, [(429, 1), (502, 1)]);
    assert_eq!(f.releases.len(), 1);
    assert_eq!(
        (f.releases[0].release.as_str(), f.releases[0].failures),
        ("v2", 2)
    );
    assert_eq!(facts.step.successes_before, 2);
    assert_eq!(facts.incident.message.as_deref(), Some("declined"));

    let v = facts.vendor.expect("the incident names a vendor");
    assert_eq!(v.vendor, "stripe");
    assert_eq!(v.tenant_workflows_failing, ["checkout"]);
    assert_eq!((v.tenant_calls, v.tenant_failures), (4, 2));
    assert_eq!(v.other_tenants_failing, 0);
    assert!(v.breaker.is_none(), "the breaker is not a database fact");

    assert!(
        store
            .analysis_facts(Some(Uuid::now_v7()), id, WINDOWS)
            .await
            .unwrap()
            .is_none(),
        "another tenant sees no such incident"
    );
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn other_tenants_count_but_show_nothing_else(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let now = Utc::now();
    let mut others: Vec<Tenant> = Vec::new();
    for slug in ["globex", "initech"] {
        others.push(
            store
                .create_tenant(slug, &format!("key-{slug}"))
                .await
                .unwrap(),
        );
    }
    for (i, o) in others.iter().enumerate() {
        detect(
            &store,
            vec![
                common::failure(o.id, &format!("o{i}"), "their-flow", "e1", now),
                common::success(o.id, &format!("os{i}"), "their-flow", now),
            ],
        )
        .await;
    }
    let out = detect(
        &store,
        vec![common::failure(t.id, "f1", "checkout", "e1", now)],
    )
    .await;
    let facts = store
        .analysis_facts(Some(t.id), out.opened[0].id, WINDOWS)
        .await
        .unwrap()
        .unwrap();
    let v = facts.vendor.unwrap();
    assert_eq!(v.other_tenants_failing, 2);
    assert_eq!(v.other_tenant_failures, 2);
    assert_eq!(v.other_tenant_successes, 2);
    assert_eq!(v.other_tenants_same_code, 2);
    assert_eq!(
        v.tenant_workflows_failing,
        ["checkout"],
        "only this tenant's workflows"
    );
    assert!(
        facts.past.is_empty(),
        "other tenants' incidents are never candidates"
    );
}

fn decision(t: &Tenant, incident: Uuid, trigger: &str) -> DecisionV1 {
    let json = serde_json::json!({
        "id": DecisionV1::id_for(incident, trigger),
        "incident_id": incident,
        "tenant_id": t.id,
        "tenant": t.slug,
        "trigger": trigger,
        "supersedes": null,
        "engine": {"name": "local", "version": "test"},
        "signature_inputs": {
            "tenant": t.slug, "workflow_id": "checkout", "error_code_raw": "E1",
            "error_code": "e1", "vendor": "stripe", "step": "charge", "open_after": null,
            "reopen_window": {"file": "awfdrs.yaml", "key": "detector.reopen_window_secs"}
        },
        "classification": {
            "category": "transient", "severity": "high", "retryable": true,
            "rule": {"file": "error_codes.yaml", "key": "codes.e1"},
            "description": "", "overrides": []
        },
        "root_cause": {
            "hypothesis": {"kind": "unknown", "confidence": 0.2, "summary": "", "evidence": []},
            "ranked": [], "rejected": null
        },
        "similar_incidents": [],
        "recommended_action": {"action": "retry", "reason": "", "policy": "network",
                               "next_delay_ms": 1000, "confidence": 0.5},
        "confidence": 0.2,
        "correlation_id": "c-1",
        "created_at": "2026-12-01T00:00:00Z"
    });
    serde_json::from_value(json).unwrap()
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_decision_is_recorded_once_per_trigger_and_moves_the_incident_once(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let out = detect(
        &store,
        vec![common::failure(t.id, "f1", "checkout", "e1", Utc::now())],
    )
    .await;
    let id = out.opened[0].id;
    let first = decision(&t, id, "opened");
    for round in 0..2 {
        let mut work = store.begin_work().await.unwrap();
        let moved = work
            .start_analysis(t.id, id, "analyzer", "analysing (opened)")
            .await
            .unwrap();
        let recorded = work.record_decision(&first).await.unwrap();
        let _ = work.commit().await.unwrap();
        assert_eq!((moved, recorded), (round == 0, round == 0), "round {round}");
    }
    assert_eq!(
        store.latest_decision(t.id, id).await.unwrap(),
        Some(first.id)
    );
    let mut later = decision(&t, id, "breaker-opened:stripe:1");
    later.supersedes = Some(first.id);
    let mut work = store.begin_work().await.unwrap();
    assert!(work.record_decision(&later).await.unwrap());
    let _ = work.commit().await.unwrap();

    let bodies = store.decisions(Some(t.id), id).await.unwrap();
    assert_eq!(bodies.len(), 2);
    let read: DecisionV1 = serde_json::from_value(bodies[0].clone()).unwrap();
    assert_eq!(read, first, "read back as written");
    assert_eq!(
        store.latest_decision(t.id, id).await.unwrap(),
        Some(later.id)
    );
    assert!(
        store
            .decisions(Some(Uuid::now_v7()), id)
            .await
            .unwrap()
            .is_empty()
    );

    let detail = store.incident(Some(t.id), id).await.unwrap();
    assert_eq!(detail.incident.status, IncidentStatus::Analyzing);
    let last = detail.timeline.last().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.reason.as_str()),
        ("analyzer", "analysing (opened)")
    );
    assert_eq!(
        store.open_incidents_of_vendor("stripe").await.unwrap(),
        [(t.id, id)]
    );

    let refused = sqlx::query("UPDATE decisions SET confidence = 1")
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "decisions are append-only");
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn similar_messages_are_found_by_their_shared_keys(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let now = Utc::now();
    let a = detect(
        &store,
        vec![common::failure(t.id, "f1", "checkout", "e1", now)],
    )
    .await
    .opened[0]
        .id;
    let b = detect(
        &store,
        vec![common::failure(t.id, "f2", "billing", "e2", now)],
    )
    .await
    .opened[0]
        .id;
    let mut work = store.begin_work().await.unwrap();
    work.store_message_vector(t.id, a, &[1.0, 0.0], &[1, 2])
        .await
        .unwrap();
    work.store_message_vector(t.id, b, &[0.0, 1.0], &[3])
        .await
        .unwrap();
    let _ = work.commit().await.unwrap();
    let found = store
        .similar_candidates(t.id, Uuid::now_v7(), &[2, 9], 10)
        .await
        .unwrap();
    let ids: Vec<Uuid> = found.iter().map(|p| p.id).collect();
    assert_eq!(ids, [a]);
    assert_eq!(found[0].message_vector.as_deref(), Some(&[1.0f32, 0.0][..]));
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn the_vendor_is_counted_by_the_minutes_of_its_window_and_once_per_event(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool.clone(), "acme").await;
    let windows = FactWindows {
        vendor_secs: 600,
        ..WINDOWS
    };
    // The incident's last failure is at 12:30:20; its window touches the
    // minutes from 12:20 to 12:30.
    let at = |s: &str| {
        format!("2026-12-01T{s}Z")
            .parse::<chrono::DateTime<Utc>>()
            .unwrap()
    };
    let outside = [
        common::success(t.id, "early", "checkout", at("12:19:59.999")),
        common::success(t.id, "late", "checkout", at("12:31:00")),
    ];
    let inside = [
        common::success(t.id, "first", "search", at("12:20:00")),
        common::success(t.id, "same-minute", "search", at("12:30:59")),
    ];
    let failures = [
        common::failure(t.id, "f1", "checkout", "e1", at("12:29:00")),
        common::failure(t.id, "f2", "checkout", "e1", at("12:30:20")),
    ];
    let all: Vec<_> = outside
        .iter()
        .chain(&inside)
        .chain(&failures)
        .cloned()
        .collect();
    let out = detect(&store, all.clone()).await;
    let id = out.opened[0].id;
    let again = detect(&store, all).await;
    assert_eq!(
        again.duplicates.len(),
        6,
        "the batch again is all duplicates"
    );

    let v = store
        .analysis_facts(Some(t.id), id, windows)
        .await
        .unwrap()
        .unwrap()
        .vendor
        .unwrap();
    assert_eq!(
        (
            v.tenant_calls,
            v.tenant_failures,
            v.tenant_successes_elsewhere
        ),
        (4, 2, 2),
        "the minutes 12:20 to 12:30, each event once"
    );
    assert_eq!(v.tenant_workflows_failing, ["checkout"]);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM vendor_minutes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 6, "one row per minute, workflow and code");
}
