//! The wire shape of a decision (`awfdrs_domain::decision::DecisionV1`) and
//! of an incident's signature inputs, described for the OpenAPI document.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a rule or setting was read.
#[derive(Serialize, ToSchema)]
pub(crate) struct RuleRef {
    #[schema(example = "error_codes.yaml")]
    file: String,
    #[schema(example = "codes.payment_timeout")]
    key: String,
}

/// Why failures were grouped into an incident.
#[derive(Serialize, ToSchema)]
pub(crate) struct SignatureInputs {
    tenant: String,
    workflow_id: String,
    /// The error code as the producer sent it.
    error_code_raw: String,
    /// The normalised code the signature uses.
    error_code: String,
    vendor: Option<String>,
    step: Option<String>,
    /// The rule that made the incident wait for N failures in a window.
    open_after: Option<RuleRef>,
    /// The setting that decides whether a new failure re-opens it.
    reopen_window: RuleRef,
}

/// A signal of the failures that changed what the rule alone said.
#[derive(Serialize, ToSchema)]
pub(crate) struct Override {
    /// `http_status`, `retryable` or `retry_after`.
    signal: String,
    value: String,
    effect: String,
}

/// What kind of failure it is, and which rule said so.
#[derive(Serialize, ToSchema)]
pub(crate) struct Classification {
    /// `transient`, `vendor_outage`, `rate_limited`, `auth`, `validation`, `permanent`.
    category: String,
    /// `low`, `medium`, `high`, `critical`.
    severity: String,
    retryable: bool,
    rule: RuleRef,
    description: String,
    overrides: Vec<Override>,
}

/// One fact a hypothesis rests on; other tenants appear only as counts.
#[derive(Serialize, ToSchema)]
pub(crate) struct Evidence {
    fact: String,
    count: Option<i64>,
    window_secs: Option<u64>,
    first_at: Option<DateTime<Utc>>,
    last_at: Option<DateTime<Utc>>,
    /// The tenant's own events that show it (at most ten).
    event_ids: Vec<Uuid>,
}

/// A candidate root cause.
#[derive(Serialize, ToSchema)]
pub(crate) struct Hypothesis {
    /// `vendor_outage`, `workflow_regression`, `tenant_configuration`,
    /// `vendor_throttling`, `data_problem` or `unknown`.
    kind: String,
    confidence: f64,
    summary: String,
    evidence: Vec<Evidence>,
}

/// The runner-up, and why it lost.
#[derive(Serialize, ToSchema)]
pub(crate) struct Rejected {
    kind: String,
    confidence: f64,
    reason: String,
}

/// The root cause with the hypotheses considered, ranked.
#[derive(Serialize, ToSchema)]
pub(crate) struct RootCause {
    hypothesis: Hypothesis,
    ranked: Vec<Hypothesis>,
    rejected: Option<Rejected>,
}

/// An earlier incident of the same tenant, and how it ended.
#[derive(Serialize, ToSchema)]
pub(crate) struct SimilarIncident {
    incident_id: Uuid,
    /// `same_signature`, `same_vendor_and_category` or `similar_message`.
    likeness: String,
    similarity: f64,
    workflow_id: String,
    error_code: String,
    status: String,
    resolution: String,
    resolved_by: Option<String>,
    took_secs: Option<i64>,
}

/// What to do about the incident.
#[derive(Serialize, ToSchema)]
pub(crate) struct Recommendation {
    /// `retry`, `hold`, `escalate` or `none`.
    action: String,
    reason: String,
    policy: Option<String>,
    next_delay_ms: Option<u64>,
    confidence: f64,
}

/// The engine that decided.
#[derive(Serialize, ToSchema)]
pub(crate) struct Engine {
    #[schema(example = "local")]
    name: String,
    version: String,
}

/// One decision about an incident (append-only).
#[derive(Serialize, ToSchema)]
pub(crate) struct Decision {
    id: Uuid,
    incident_id: Uuid,
    tenant_id: Uuid,
    tenant: String,
    /// `opened`, `reopened:<n>` or `breaker-opened:<vendor>:<opened_at_ms>`.
    trigger: String,
    /// The decision this one replaces.
    supersedes: Option<Uuid>,
    engine: Engine,
    signature_inputs: SignatureInputs,
    classification: Classification,
    root_cause: RootCause,
    similar_incidents: Vec<SimilarIncident>,
    recommended_action: Recommendation,
    confidence: f64,
    correlation_id: String,
    created_at: DateTime<Utc>,
}

/// An action the coordinator took on a decision.
#[derive(Serialize, ToSchema)]
pub(crate) struct Action {
    id: Uuid,
    tenant_id: Uuid,
    incident_id: Uuid,
    /// The decision it acts on (`null` for a retry released from a hold and
    /// for what a release escalated).
    decision_id: Option<Uuid>,
    /// `retry`, `escalate`, `hold` or `none`.
    kind: String,
    /// `PENDING`, `SCHEDULED`, `EXECUTING`, `SUCCEEDED`, `FAILED` or `CANCELLED`.
    status: String,
    /// The retry attempt it is or holds; 0 for an escalation.
    attempt: i32,
    /// Recorded in shadow mode: never executed.
    shadow: bool,
    due_at: Option<DateTime<Utc>>,
    reason: String,
    /// The setting that turned a retry into an escalation.
    limit_key: Option<String>,
    vendor: Option<String>,
    /// What a `PENDING` retry waits for: `approval` (an operator's
    /// approval, and the end of any pause), `pause` or `hold` (its hold's
    /// release); `null` otherwise.
    waiting_for: Option<String>,
    /// The operator who approved it (`operator:<tenant slug>`).
    approved_by: Option<String>,
    approved_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// A retry's delivery to its workflow's HTTP callback; `null` when it
    /// has none.
    callback: Option<CallbackOutcome>,
}

/// How a retry command's delivery to its workflow's callback went.
#[derive(Serialize, ToSchema)]
pub(crate) struct CallbackOutcome {
    /// `PENDING`, `DELIVERED` or `FAILED`.
    status: String,
    /// Tries made so far.
    tries: i32,
    /// The last answer's HTTP status, if there was an answer.
    last_status_code: Option<i32>,
    /// Why the last try did not deliver.
    last_error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
    /// When it is tried next, while `PENDING`.
    next_try_at: Option<DateTime<Utc>>,
}
