//! What an analysis reads: the facts the store gathers about one incident,
//! its tenant's history and its vendor. Plain data; the engine does no I/O.
//!
//! Facts about other tenants are aggregates only (counts), so no other
//! tenant's id, slug, workflow, message or event can reach a decision.

use awfdrs_domain::decision::{RuleRef, SignatureInputs};
use awfdrs_rules::ErrorRule;
use awfdrs_safety::RetryPolicy;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What made the analysis happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// The incident was opened.
    Opened,
    /// A resolved incident re-opened, for the `n`-th time.
    Reopened(u32),
    /// The vendor's breaker opened while the incident was open.
    BreakerOpened {
        vendor: String,
        opened_at: DateTime<Utc>,
    },
    /// A later failure of the same run failed the incident's retry
    /// `attempt`.
    RetryFailed(u32),
}

impl Trigger {
    /// The trigger as recorded on the decision (and hashed into its id):
    /// `opened`, `reopened:<n>`, `breaker-opened:<vendor>:<opened_at_ms>`,
    /// `retry-failed:<attempt>`.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::Opened => "opened".to_owned(),
            Self::Reopened(n) => format!("reopened:{n}"),
            Self::BreakerOpened { vendor, opened_at } => {
                format!("breaker-opened:{vendor}:{}", opened_at.timestamp_millis())
            }
            Self::RetryFailed(attempt) => format!("retry-failed:{attempt}"),
        }
    }
}

/// The incident itself.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentFacts {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub signature: String,
    pub inputs: SignatureInputs,
    pub event_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub reopen_count: i32,
    /// The latest failure's error message, if it had one.
    pub message: Option<String>,
    /// The correlation id of the failure that opened it.
    pub correlation_id: String,
}

/// How often the failures carried one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCount {
    pub status: i32,
    pub count: i64,
}

/// One release (or version) seen in the metadata of the workflow's events
/// (`metadata.release` or `metadata.version`), with how its runs of the
/// failing step went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFacts {
    pub release: String,
    pub failures: i64,
    pub successes: i64,
    pub first_at: DateTime<Utc>,
}

/// The incident's own failures.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureSignals {
    pub count: i64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// Some of the failures' event ids, oldest first (at most ten).
    pub sample_event_ids: Vec<Uuid>,
    /// The HTTP statuses the failures carried, most frequent first.
    pub http_statuses: Vec<StatusCount>,
    /// How many failures the producer flagged `retryable: true` / `false`.
    pub producer_retryable: i64,
    pub producer_not_retryable: i64,
    /// The largest `Retry-After` (`metadata.retry_after` or
    /// `metadata["Retry-After"]`, seconds) the failures carried.
    pub retry_after_secs: Option<u64>,
    /// Distinct workflow runs among the failures.
    pub distinct_runs: i64,
    /// Releases seen on the workflow's events of this step, oldest first.
    pub releases: Vec<ReleaseFacts>,
}

/// The same workflow step before it started failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepHistory {
    /// Successes of the same workflow and step before the first failure,
    /// within the lookback window.
    pub successes_before: i64,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_success_event: Option<Uuid>,
    pub lookback_secs: u64,
}

/// The vendor's breaker, as the process's watched view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerFacts {
    /// `CLOSED`, `OPEN` or `HALF_OPEN`.
    pub state: String,
    pub failure_rate: f64,
    pub opened_at: Option<DateTime<Utc>>,
}

/// The vendor across this tenant's workflows and across tenants, in a
/// window ending at the incident's last failure.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorFacts {
    pub vendor: String,
    pub window_secs: u64,
    pub breaker: Option<BreakerFacts>,
    /// This tenant's workflows with failures of this vendor in the window
    /// (the incident's own included), sorted.
    pub tenant_workflows_failing: Vec<String>,
    /// This tenant's events naming the vendor in the window, and how many
    /// of them failed.
    pub tenant_calls: i64,
    pub tenant_failures: i64,
    /// This tenant's successes with the vendor in other workflows or steps.
    pub tenant_successes_elsewhere: i64,
    /// Other tenants with failures of this vendor in the window, and their
    /// failures and successes (aggregates only).
    pub other_tenants_failing: i64,
    pub other_tenant_failures: i64,
    pub other_tenant_successes: i64,
    /// Other tenants that saw this same normalised error code in the window.
    pub other_tenants_same_code: i64,
}

/// One of the tenant's earlier incidents, a candidate for "similar".
#[derive(Debug, Clone, PartialEq)]
pub struct PastIncident {
    pub id: Uuid,
    pub signature: String,
    pub workflow_id: String,
    pub error_code: String,
    pub vendor: Option<String>,
    /// The category its error code has under the current rules.
    pub category: awfdrs_domain::decision::Category,
    pub message: Option<String>,
    /// The stored vector of its message (see `similar::vector`).
    pub vector: Vec<f32>,
    /// `NEW`, `ANALYZING`, `ACTIONED` or `RESOLVED`.
    pub status: String,
    pub first_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// `auto-resolve`, or the operator key's name.
    pub resolved_by: Option<String>,
    /// Successes that auto-resolved it, when it was.
    pub resolved_after_successes: Option<i64>,
    /// The retry attempt after which it recovered, when a retry preceded
    /// its auto-resolution.
    pub resolved_by_retry: Option<u32>,
}

/// Everything one analysis reads.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisInput {
    pub incident: IncidentFacts,
    pub trigger: Trigger,
    /// The latest decision about this incident, which this one replaces.
    pub supersedes: Option<Uuid>,
    /// The error code's rule and where it was read.
    pub rule: ErrorRule,
    pub rule_ref: RuleRef,
    /// The rule's retry policy, by name, when it has one.
    pub policy: Option<(String, RetryPolicy)>,
    pub failures: FailureSignals,
    pub step: StepHistory,
    pub vendor: Option<VendorFacts>,
    /// The tenant's earlier incidents (not this one), any order.
    pub past: Vec<PastIncident>,
    /// The decision's time: the instant the analysis is about (the message
    /// that triggered it), never the wall clock, so the same inputs give
    /// the same decision.
    pub at: DateTime<Utc>,
}
