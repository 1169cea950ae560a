//! A decision: what the analyzer concluded about an incident, with the
//! evidence it rests on. Append-only: a later material change (the incident
//! re-opens, the vendor's breaker opens) makes a new decision that names the
//! one it supersedes. Published as [`DecisionV1`] on
//! `<ns>.decisions.<tenant>` and shown in `GET /api/v1/incidents/{id}`.
//!
//! Everything here is plain data with a fixed field order and no maps, so
//! the same inputs serialise to the same bytes. Confidences and
//! similarities are rounded to two decimals (see [`round2`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How bad an error is for the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look, no hurry.
    Low,
    /// Needs attention today.
    Medium,
    /// Hurts customers now.
    High,
    /// Stops the business; page someone.
    Critical,
}

/// What kind of failure an error code is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Likely to pass on a later try (timeouts, resets).
    Transient,
    /// The vendor is down or failing.
    VendorOutage,
    /// The vendor is asking us to slow down.
    RateLimited,
    /// Credentials are missing, wrong or expired.
    Auth,
    /// The request itself is wrong.
    Validation,
    /// Will fail the same way every time.
    Permanent,
}

/// Where a rule or setting was read: its file and key path, e.g.
/// `error_codes.yaml` and `codes.payment_timeout`, or `awfdrs.yaml` and
/// `detector.reopen_window_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRef {
    pub file: String,
    pub key: String,
}

/// Why failures were grouped into this incident: what its signature is made
/// of, and the rules that shaped when it opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureInputs {
    pub tenant: String,
    pub workflow_id: String,
    /// The error code as the producer sent it.
    pub error_code_raw: String,
    /// The normalised code the signature uses.
    pub error_code: String,
    pub vendor: Option<String>,
    pub step: Option<String>,
    /// The rule that made the incident wait for N failures in a window.
    pub open_after: Option<RuleRef>,
    /// The setting that decides whether a new failure re-opens it.
    pub reopen_window: RuleRef,
}

/// A signal of the failures that changed what the rule alone said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The signal: `http_status`, `retryable`, `retry_after`.
    pub signal: String,
    /// Its value, as seen.
    pub value: String,
    /// What it changed, in words.
    pub effect: String,
}

/// What kind of failure this is, and which rule said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classification {
    pub category: Category,
    pub severity: Severity,
    pub retryable: bool,
    /// The rule that decided, before any override.
    pub rule: RuleRef,
    pub description: String,
    /// Signals of the failures that overrode the rule, in the order applied.
    pub overrides: Vec<Override>,
}

/// The kinds of root cause the analysis knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    /// The vendor is failing for several workflows or tenants.
    VendorOutage,
    /// One workflow started failing after a run of successes (a release).
    WorkflowRegression,
    /// The tenant's own credentials or requests are wrong.
    TenantConfiguration,
    /// The vendor is throttling (429s, `Retry-After`).
    VendorThrottling,
    /// One step fails the same way on many runs while the vendor serves
    /// others: the data sent is the problem.
    DataProblem,
    /// Nothing fits well enough.
    Unknown,
}

/// One fact a hypothesis rests on. Evidence drawn from other tenants is an
/// aggregate only: counts, never their ids, names or events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// What was observed, in words.
    pub fact: String,
    pub count: Option<i64>,
    /// The window the count is over, in seconds.
    pub window_secs: Option<u64>,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
    /// Events of this tenant that show it (at most ten).
    pub event_ids: Vec<Uuid>,
}

/// A candidate root cause with what speaks for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hypothesis {
    pub kind: CauseKind,
    /// 0 to 1, two decimals.
    pub confidence: f64,
    pub summary: String,
    pub evidence: Vec<Evidence>,
}

/// The alternative the analysis ranked second, and why it lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejected {
    pub kind: CauseKind,
    pub confidence: f64,
    pub reason: String,
}

/// The root cause: the best hypothesis, every hypothesis considered
/// (ranked), and the runner-up the analysis rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootCause {
    pub hypothesis: Hypothesis,
    pub ranked: Vec<Hypothesis>,
    pub rejected: Option<Rejected>,
}

/// Why a past incident is listed as similar, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Likeness {
    SameSignature,
    SameVendorAndCategory,
    SimilarMessage,
}

/// An earlier incident of the same tenant, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarIncident {
    pub incident_id: Uuid,
    pub likeness: Likeness,
    /// Cosine similarity of the error messages, two decimals.
    pub similarity: f64,
    pub workflow_id: String,
    pub error_code: String,
    pub status: String,
    /// How it ended: `auto-resolved after N successes`, `resolved by <key>`,
    /// or `still open`.
    pub resolution: String,
    pub resolved_by: Option<String>,
    /// Seconds from first failure to resolution.
    pub took_secs: Option<i64>,
}

/// What to do about an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Retry,
    Hold,
    Escalate,
    None,
}

/// The recommendation, with the policy a retry follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recommendation {
    pub action: ActionKind,
    pub reason: String,
    /// The retry policy's name (retry and hold).
    pub policy: Option<String>,
    /// The delay before the next retry, in milliseconds (retry).
    pub next_delay_ms: Option<u64>,
    pub confidence: f64,
}

/// Which engine decided, and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    pub name: String,
    pub version: String,
}

/// `<ns>.decisions.<tenant>`: one decision about one incident. Published by
/// the analyzer through its outbox with message id `decision:<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionV1 {
    pub id: Uuid,
    pub incident_id: Uuid,
    pub tenant_id: Uuid,
    pub tenant: String,
    /// What made this decision: `opened`, `reopened:<n>`,
    /// `breaker-opened:<vendor>:<opened_at_ms>`.
    pub trigger: String,
    /// The decision this one replaces, if any.
    pub supersedes: Option<Uuid>,
    pub engine: Engine,
    pub signature_inputs: SignatureInputs,
    pub classification: Classification,
    pub root_cause: RootCause,
    pub similar_incidents: Vec<SimilarIncident>,
    pub recommended_action: Recommendation,
    /// The root cause's confidence.
    pub confidence: f64,
    pub correlation_id: String,
    pub created_at: DateTime<Utc>,
}

impl DecisionV1 {
    /// A decision's id: the same incident and trigger always give the same
    /// id, so a redelivered message cannot make a second decision.
    #[must_use]
    pub fn id_for(incident_id: Uuid, trigger: &str) -> Uuid {
        Uuid::new_v5(&incident_id, trigger.as_bytes())
    }

    /// The message id of its publication.
    #[must_use]
    pub fn msg_id(&self) -> String {
        format!("decision:{}", self.id)
    }
}

/// `x` rounded to two decimals: confidences and similarities are shown and
/// compared at that precision, so tiny float differences cannot change a
/// decision's bytes.
#[must_use]
pub fn round2(x: f64) -> f64 {
    if x.is_finite() {
        (x * 100.0).round() / 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_id_is_stable_per_incident_and_trigger() {
        let incident = Uuid::from_u128(7);
        assert_eq!(
            DecisionV1::id_for(incident, "opened"),
            DecisionV1::id_for(incident, "opened")
        );
        assert_ne!(
            DecisionV1::id_for(incident, "opened"),
            DecisionV1::id_for(incident, "reopened:1")
        );
    }

    #[test]
    fn two_decimals() {
        assert!((round2(0.123_456) - 0.12).abs() < f64::EPSILON);
        assert!((round2(f64::NAN)).abs() < f64::EPSILON);
    }
}
