//! The wire shapes of the API, described for its OpenAPI document.
//!
//! These types are never built: the handlers write the shapes they
//! describe, and the route test checks the fields the contract relies on.

#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// `GET /api/v1/health`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: String,
}

/// `GET /api/v1/ready`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    status: String,
    /// `ok`, or why the check failed, per dependency.
    checks: ReadinessChecks,
    /// The process's tasks: `ok`, `degraded: <why>` or `failed: <why>`.
    tasks: BTreeMap<String, String>,
}

/// The checks of a readiness answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReadinessChecks {
    /// `ok`, or why PostgreSQL cannot be reached.
    postgres: String,
    /// `ok`, or why NATS cannot be reached.
    nats: String,
}

/// An RFC 9457 problem: the body of every 4xx and 5xx answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Problem {
    /// `/problems/<kind>`: `malformed-request`, `unauthorized`, `forbidden`,
    /// `not-found`, `invalid-event`, `idempotency-key-reused`,
    /// `body-too-large`, `rate-limited`, `unavailable`, `internal`, …
    #[serde(rename = "type")]
    #[schema(example = "/problems/invalid-event")]
    kind: String,
    /// A short summary of the kind.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong with this request.
    detail: String,
    /// The invalid fields (`422` only).
    errors: Option<Vec<FieldError>>,
}

/// One invalid field of a `422`.
#[derive(Serialize, ToSchema)]
pub(crate) struct FieldError {
    /// The field's path (`metadata.a.b`, `events`, `error.code`).
    field: String,
    /// The constraint it breaks.
    reason: String,
}

/// The kind of a workflow event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum EventType {
    StepStarted,
    StepSucceeded,
    StepFailed,
    WorkflowSucceeded,
    WorkflowFailed,
}

/// One workflow event. Unknown fields are rejected; no string may hold a
/// NUL (U+0000).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkflowEventV1 {
    /// Unique per tenant: a repeat with the same body is a duplicate (`200`),
    /// with another body a conflict (`409`).
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: String,
    /// A slug.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    workflow_id: String,
    event_type: EventType,
    /// RFC 3339; not more than 5 minutes in the future.
    occurred_at: DateTime<Utc>,
    #[schema(max_length = 255)]
    workflow_run_id: Option<String>,
    #[schema(max_length = 128)]
    step: Option<String>,
    /// The outside service the step called (a slug).
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    vendor: Option<String>,
    /// Required for `step_failed` and `workflow_failed`.
    error: Option<EventError>,
    #[schema(minimum = 1)]
    attempt: Option<i64>,
    /// 1–255 characters without control characters; else taken from
    /// `X-Correlation-ID`, or generated.
    #[schema(min_length = 1, max_length = 255)]
    correlation_id: Option<String>,
    /// At most 16 KiB serialized, nested at most 32 levels.
    metadata: Option<BTreeMap<String, Value>>,
}

/// The error of a failed step or workflow.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventError {
    /// A slug.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    code: String,
    /// At most 4 KiB.
    message: Option<String>,
    http_status: Option<u16>,
    retryable: Option<bool>,
}

/// The body of `POST /api/v1/events/batch`: 1 to 500 events, as an array or
/// wrapped in `{"events": [...]}`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Batch {
    /// The events alone (1 to 500).
    Array(Vec<WorkflowEventV1>),
    /// The events under `events`.
    Wrapped(BatchObject),
}

/// `{"events": [...]}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct BatchObject {
    #[schema(min_items = 1, max_items = 500)]
    events: Vec<WorkflowEventV1>,
}

/// The answer for an accepted (`202`) or duplicate (`200`) event.
#[derive(Serialize, ToSchema)]
pub(crate) struct Accepted {
    /// UUIDv5 of the tenant and the idempotency key.
    event_id: Uuid,
    correlation_id: String,
    /// `true` when the key was already accepted with the same body.
    duplicate: bool,
}

/// The answer of a batch: one result per event, in order.
#[derive(Serialize, ToSchema)]
pub(crate) struct BatchResults {
    results: Vec<ItemResult>,
}

/// The fate of one event of a batch.
#[derive(Serialize, ToSchema)]
pub(crate) struct ItemResult {
    /// Its position in the batch.
    index: u32,
    /// 202, 200, 409, 422 or 503, as for a single event.
    status: u16,
    /// When accepted or duplicate.
    event_id: Option<Uuid>,
    correlation_id: Option<String>,
    duplicate: Option<bool>,
    /// When rejected.
    error: Option<Problem>,
}

/// An incident's status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum IncidentStatus {
    New,
    Analyzing,
    Actioned,
    Resolved,
}

/// An incident: failures of one signature in one workflow.
#[derive(Serialize, ToSchema)]
pub(crate) struct Incident {
    id: Uuid,
    tenant_id: Uuid,
    signature: String,
    workflow_id: String,
    error_code: String,
    vendor: Option<String>,
    step: Option<String>,
    status: IncidentStatus,
    event_count: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    analyzing_at: Option<DateTime<Utc>>,
    actioned_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    resolved_by: Option<String>,
    reopen_count: i32,
}

/// A page of incidents.
#[derive(Serialize, ToSchema)]
pub(crate) struct IncidentPage {
    items: Vec<Incident>,
    /// Opaque; `null` on the last page.
    next_cursor: Option<String>,
}

/// An incident with its decisions, actions and timeline.
#[derive(Serialize, ToSchema)]
pub(crate) struct IncidentDetail {
    #[schema(inline)]
    #[serde(flatten)]
    incident: Incident,
    /// Every status change, oldest first.
    timeline: Vec<Transition>,
    /// Why its failures were grouped together.
    signature_inputs: super::decision::SignatureInputs,
    /// The analyzer's decisions, oldest first.
    decisions: Vec<super::decision::Decision>,
    /// The coordinator's actions, oldest first.
    actions: Vec<super::decision::Action>,
    /// When an operator acknowledged it (no further level is told).
    acknowledged_at: Option<DateTime<Utc>>,
    /// Who: `operator:<tenant slug>` or `operator:admin`.
    acknowledged_by: Option<String>,
    /// Its notifications to the tenant's channels, oldest first.
    notifications: Vec<Notification>,
}

/// One notification of an incident to one of the tenant's channels.
#[derive(Serialize, ToSchema)]
pub(crate) struct Notification {
    id: Uuid,
    channel_id: Uuid,
    /// The channel's name.
    channel: String,
    /// The channel's kind: `webhook`, `slack` or `pagerduty`.
    kind: String,
    /// The escalation level (1: the tenant's first channels).
    level: i32,
    /// `incident.escalated` or `incident.resolved`.
    #[serde(rename = "type")]
    type_: String,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    status: String,
    /// Tries made so far.
    tries: i32,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

/// One status change of an incident.
#[derive(Serialize, ToSchema)]
pub(crate) struct Transition {
    from_status: Option<IncidentStatus>,
    to_status: IncidentStatus,
    at: DateTime<Utc>,
    /// `detector`, `auto-resolve` or an operator.
    actor: String,
    reason: String,
}

/// A breaker's state.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// A vendor's circuit breaker, as of now.
#[derive(Serialize, ToSchema)]
pub(crate) struct Breaker {
    vendor: String,
    state: BreakerState,
    /// Failures over calls in the sliding window.
    failure_rate: f64,
    calls: u64,
    failures: u64,
    distinct_sources: u64,
    opened_at: Option<DateTime<Utc>>,
    /// When an open breaker half-opens (`null` when forced open).
    open_until: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
    forced_reason: Option<String>,
    probes_in_flight: u64,
    revision: u64,
}

/// The breakers the caller may see.
#[derive(Serialize, ToSchema)]
pub(crate) struct BreakerPage {
    items: Vec<Breaker>,
    /// Always `null`: one page.
    next_cursor: Option<String>,
}

/// A page of actions.
#[derive(Serialize, ToSchema)]
pub(crate) struct ActionPage {
    items: Vec<super::decision::Action>,
    /// Opaque; `null` on the last page.
    next_cursor: Option<String>,
}

/// An action.
pub(crate) type Action = super::decision::Action;

/// A tenant's remediation mode.
#[derive(Serialize, ToSchema)]
pub(crate) struct Mode {
    /// `auto`, `approve`, `shadow` or `off`.
    mode: String,
    /// Whether automatic retries are paused (`awfdrs pause`).
    paused: bool,
}
