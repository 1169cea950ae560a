//! The detector's batch transaction, against a fresh database per test.

mod common;

use awfdrs_domain::IncidentStatus;
use common::Detect as _;

use awfdrs_store::DetectBatch;
use chrono::{Duration, Utc};
use sqlx::PgPool;

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn failures_of_one_signature_open_one_incident_with_one_outbox_row(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    let now = Utc::now();
    let batch = DetectBatch {
        events: vec![
            common::failure(t.id, "k1", "wf", "E1", now),
            common::failure(t.id, "k2", "wf", "E1", now + Duration::seconds(1)),
        ],
    };
    let (out, committed) = store.detect_committed(&batch).await.unwrap();
    assert_eq!(out.opened.len(), 1);
    assert!(!out.opened[0].reopened);
    let rows = committed.outbox;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].subject, "test.incidents.opened");
    assert_eq!(rows, store.stale_outbox(0, 10).await.unwrap());
    let detail = store.incident(Some(t.id), out.opened[0].id).await.unwrap();
    assert_eq!(detail.incident.event_count, 2);
    assert_eq!(detail.incident.status, IncidentStatus::New);
    assert_eq!(detail.timeline.len(), 1);

    // A redelivered batch changes nothing.
    let again = store
        .detect_batch(&batch, common::SETTINGS, &common::outbox_for)
        .await
        .unwrap();
    assert_eq!(again.duplicates, [0, 1]);
    assert!(again.opened.is_empty());
    let detail = store.incident(Some(t.id), out.opened[0].id).await.unwrap();
    assert_eq!(detail.incident.event_count, 2);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn enough_successes_resolve_and_a_new_failure_reopens(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    let now = Utc::now();
    let opened = store
        .detect_batch(
            &DetectBatch {
                events: vec![common::failure(t.id, "f1", "wf", "E1", now)],
            },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    let id = opened.opened[0].id;
    let successes = (1..=3)
        .map(|i| common::success(t.id, &format!("s{i}"), "wf", now + Duration::seconds(i)))
        .collect();
    let out = store
        .detect_batch(
            &DetectBatch { events: successes },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    assert_eq!(out.resolved, [id]);
    assert_eq!(
        store.incident(None, id).await.unwrap().incident.status,
        IncidentStatus::Resolved
    );

    let out = store
        .detect_batch(
            &DetectBatch {
                events: vec![common::failure(
                    t.id,
                    "f2",
                    "wf",
                    "E1",
                    now + Duration::seconds(10),
                )],
            },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    assert_eq!(out.opened.len(), 1);
    assert_eq!(out.opened[0].id, id);
    assert!(out.opened[0].reopened);
    let detail = store.incident(None, id).await.unwrap();
    assert_eq!(detail.incident.reopen_count, 1);
    let steps: Vec<(Option<IncidentStatus>, IncidentStatus)> = detail
        .timeline
        .iter()
        .map(|t| (t.from_status, t.to_status))
        .collect();
    use IncidentStatus::{New, Resolved};
    assert_eq!(
        steps,
        [(None, New), (Some(New), Resolved), (Some(Resolved), New)]
    );
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_gated_signature_opens_only_once_enough_failures_fall_in_its_window(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    let now = Utc::now();
    let gated = |key: &str, secs: i64| {
        let mut e = common::failure(t.id, key, "wf", "E1", now + Duration::seconds(secs));
        e.open_after = Some((3, 600.0));
        e
    };
    let out = store
        .detect_batch(
            &DetectBatch {
                events: vec![gated("g1", 0), gated("g2", 1)],
            },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    assert_eq!(out.inserted, [0, 1]);
    assert!(out.opened.is_empty());
    let out = store
        .detect_batch(
            &DetectBatch {
                events: vec![gated("g3", 2)],
            },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    assert_eq!(out.opened.len(), 1);
    let detail = store.incident(None, out.opened[0].id).await.unwrap();
    assert_eq!(detail.incident.event_count, 3);
}
