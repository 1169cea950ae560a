//! What the store's tests share: a tenant, and events to detect.

#![allow(dead_code)]

use awfdrs_store::{
    Committed, DetectBatch, DetectOutcome, DetectSettings, NewEvent, NewOutbox, OpenedIncident,
    Store, StoreError, Tenant,
};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// A store on the test's own database, with one tenant.
pub async fn store_with_tenant(pool: PgPool, slug: &str) -> (Store, Tenant) {
    let store = Store::from_pool(pool);
    let tenant = store
        .create_tenant(slug, &format!("key-{slug}"))
        .await
        .expect("create tenant");
    (store, tenant)
}

/// Rules as the detector applies them by default.
pub const SETTINGS: DetectSettings = DetectSettings {
    reopen_window_secs: 3600,
    auto_resolve_successes: 3,
};

/// A failure of `workflow`'s `step` with `code`, published straight to NATS.
pub fn failure(tenant: Uuid, key: &str, workflow: &str, code: &str, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        idempotency_key: key.to_owned(),
        workflow_id: workflow.to_owned(),
        event_type: "step_failed",
        is_failure: true,
        is_success: false,
        occurred_at: at,
        workflow_run_id: Some(format!("run-{key}")),
        step: Some("charge".to_owned()),
        vendor: Some("stripe".to_owned()),
        error_code: Some(code.to_owned()),
        error_code_raw: Some(code.to_uppercase()),
        error_message: Some("declined".to_owned()),
        http_status: Some(502),
        retryable: Some(true),
        attempt: Some(1),
        correlation_id: format!("corr-{key}"),
        signature: Some(format!("{workflow}/charge/{code}")),
        body_hash: key.as_bytes().to_vec(),
        source: "nats",
        reservation: None,
        metadata: None,
        open_after: None,
    }
}

/// A success of `workflow`'s `step`, published straight to NATS.
pub fn success(tenant: Uuid, key: &str, workflow: &str, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        event_type: "step_succeeded",
        is_failure: false,
        is_success: true,
        error_code: None,
        error_code_raw: None,
        error_message: None,
        http_status: Some(200),
        retryable: None,
        signature: None,
        ..failure(tenant, key, workflow, "none", at)
    }
}

/// The outbox message the tests write for an opened incident.
pub fn outbox_for(o: &OpenedIncident) -> NewOutbox {
    NewOutbox {
        tenant_id: o.tenant_id,
        subject: "test.incidents.opened".to_owned(),
        msg_id: format!("incident-opened:{}:{}", o.id, o.reopened),
        payload: serde_json::json!({ "incident_id": o.id, "signature": o.signature }),
        correlation_id: Some(o.correlation_id.clone()),
    }
}

/// The detector's transaction as a worker runs it: detect, announce each
/// opened incident through the outbox, commit.
pub trait Detect {
    async fn detect_batch(
        &self,
        batch: &DetectBatch,
        settings: DetectSettings,
        outbox_for: &dyn Fn(&OpenedIncident) -> NewOutbox,
    ) -> Result<DetectOutcome, StoreError>;

    /// [`Detect::detect_batch`], with what the commit left to publish.
    async fn detect_committed(
        &self,
        batch: &DetectBatch,
    ) -> Result<(DetectOutcome, Committed), StoreError>;
}

impl Detect for Store {
    async fn detect_batch(
        &self,
        batch: &DetectBatch,
        settings: DetectSettings,
        outbox_for: &dyn Fn(&OpenedIncident) -> NewOutbox,
    ) -> Result<DetectOutcome, StoreError> {
        let mut work = self.begin_work().await?;
        let out = work.detect(batch, settings).await?;
        work.outbox(out.opened.iter().map(outbox_for).collect())
            .await?;
        let _ = work.commit().await?;
        Ok(out)
    }

    async fn detect_committed(
        &self,
        batch: &DetectBatch,
    ) -> Result<(DetectOutcome, Committed), StoreError> {
        let mut work = self.begin_work().await?;
        let out = work.detect(batch, SETTINGS).await?;
        work.outbox(out.opened.iter().map(outbox_for).collect())
            .await?;
        Ok((out, work.commit().await?))
    }
}
