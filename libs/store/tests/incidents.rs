//! Reading incidents, against a fresh database per test.

mod common;

use awfdrs_domain::IncidentStatus;
use common::Detect as _;

use awfdrs_store::{DetectBatch, IncidentFilter, Store, StoreError, Tenant};
use chrono::{Duration, Utc};
use sqlx::PgPool;

/// Opens one incident per workflow `wf0..wfN`, each seen a second later.
async fn open(store: &Store, t: &Tenant, n: i64) {
    let now = Utc::now();
    let events = (0..n)
        .map(|i| {
            common::failure(
                t.id,
                &format!("{}-k{i}", t.slug),
                &format!("wf{i}"),
                "E1",
                now + Duration::seconds(i),
            )
        })
        .collect();
    let out = store
        .detect_batch(
            &DetectBatch { events },
            common::SETTINGS,
            &common::outbox_for,
        )
        .await
        .unwrap();
    assert_eq!(out.opened.len() as i64, n);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_tenant_lists_only_its_incidents_most_recently_seen_first(pool: PgPool) {
    let (store, a) = common::store_with_tenant(pool, "acme").await;
    let b = store.create_tenant("other", "k-other").await.unwrap();
    open(&store, &a, 3).await;
    open(&store, &b, 2).await;
    let f = IncidentFilter {
        tenant: Some(a.id),
        limit: 50,
        ..Default::default()
    };
    let page = store.list_incidents(&f).await.unwrap();
    let wfs: Vec<&str> = page.items.iter().map(|i| i.workflow_id.as_str()).collect();
    assert_eq!(wfs, ["wf2", "wf1", "wf0"]);
    assert!(page.items.iter().all(|i| i.tenant_id == a.id));
    assert!(page.next.is_none());
    let all = store
        .list_incidents(&IncidentFilter {
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 5);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn filters_narrow_the_list(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    open(&store, &t, 3).await;
    let by_wf = IncidentFilter {
        tenant: Some(t.id),
        workflow_id: Some("wf1".to_owned()),
        limit: 50,
        ..Default::default()
    };
    assert_eq!(store.list_incidents(&by_wf).await.unwrap().items.len(), 1);
    let by_vendor = IncidentFilter {
        vendor: Some("twilio".to_owned()),
        ..by_wf.clone()
    };
    assert!(
        store
            .list_incidents(&by_vendor)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let resolved = IncidentFilter {
        tenant: Some(t.id),
        status: Some(IncidentStatus::Resolved),
        limit: 50,
        ..Default::default()
    };
    assert!(
        store
            .list_incidents(&resolved)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let new = IncidentFilter {
        status: Some(IncidentStatus::New),
        ..resolved
    };
    assert_eq!(store.list_incidents(&new).await.unwrap().items.len(), 3);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn the_cursor_pages_through_every_incident_once(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    open(&store, &t, 5).await;
    let mut f = IncidentFilter {
        tenant: Some(t.id),
        limit: 2,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list_incidents(&f).await.unwrap();
        pages += 1;
        seen.extend(page.items.into_iter().map(|i| i.workflow_id));
        match page.next {
            Some(next) => f.after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["wf4", "wf3", "wf2", "wf1", "wf0"]);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn another_tenants_incident_is_not_found(pool: PgPool) {
    let (store, a) = common::store_with_tenant(pool, "acme").await;
    let b = store.create_tenant("other", "k-other").await.unwrap();
    open(&store, &a, 1).await;
    let f = IncidentFilter {
        tenant: Some(a.id),
        limit: 1,
        ..Default::default()
    };
    let id = store.list_incidents(&f).await.unwrap().items[0].id;
    assert!(store.incident(Some(a.id), id).await.is_ok());
    assert!(store.incident(None, id).await.is_ok());
    let err = store.incident(Some(b.id), id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(store.event_count(a.id).await.unwrap(), 1);
    assert_eq!(store.event_count(b.id).await.unwrap(), 0);
}
