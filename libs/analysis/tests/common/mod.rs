//! Fixtures shared by the analysis tests: one tenant's incident with fixed
//! ids and times, and the realistic scenarios built from it.
// Each test binary uses a part of these.
#![allow(dead_code, unused_imports)]

mod scenarios;

pub use scenarios::*;

use std::time::Duration;

use awfdrs_analysis::similar;
use awfdrs_analysis::{
    AnalysisInput, BreakerFacts, FailureSignals, IncidentFacts, PastIncident, StatusCount,
    StepHistory, Trigger, VendorFacts,
};
use awfdrs_domain::decision::{Category, RuleRef, Severity, SignatureInputs};
use awfdrs_rules::ErrorRule;
use awfdrs_safety::{BackoffKind, RetryPolicy};
use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

/// The tenant every fixture belongs to.
pub const TENANT: &str = "acme";

/// A fixed instant `mins` minutes after the fixtures' epoch.
pub fn t(mins: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("valid")
        + chrono::Duration::minutes(mins)
}

/// A fixed id.
pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

pub fn tenant_id() -> Uuid {
    id(0xACE)
}

/// The incident's own failure events.
pub fn event_ids() -> Vec<Uuid> {
    (0..5).map(|n| id(0xE000 + n)).collect()
}

pub fn rule(
    severity: Severity,
    category: Category,
    policy: Option<&str>,
    description: &str,
) -> ErrorRule {
    ErrorRule {
        severity,
        category,
        vendor_fault: matches!(category, Category::Transient | Category::VendorOutage),
        retry_policy: policy.map(str::to_owned),
        description: description.to_owned(),
        open_after: None,
        mode: None,
        notify_after: None,
    }
}

/// The retry policies of the default rules, by name.
pub fn policy(name: &str) -> (String, RetryPolicy) {
    let (initial, multiplier, max_delay, attempts, elapsed) = match name {
        "payment_timeout" => (10, 3.0, 300, 4, 1800),
        "rate_limited" => (10, 2.0, 300, 6, 1800),
        "network" => (1, 2.0, 30, 5, 300),
        _ => (2, 2.0, 60, 5, 600),
    };
    (
        name.to_owned(),
        RetryPolicy {
            kind: BackoffKind::Exponential,
            initial_delay: Duration::from_secs(initial),
            multiplier: Some(multiplier),
            increment: None,
            max_delay: Duration::from_secs(max_delay),
            max_attempts: attempts,
            max_elapsed: Some(Duration::from_secs(elapsed)),
            jitter: true,
        },
    )
}

/// The incident's signature inputs for `code` at `vendor`.
pub fn inputs(
    workflow: &str,
    code: &str,
    vendor: Option<&str>,
    step: Option<&str>,
) -> SignatureInputs {
    SignatureInputs {
        tenant: TENANT.to_owned(),
        workflow_id: workflow.to_owned(),
        error_code_raw: code.to_uppercase(),
        error_code: code.to_owned(),
        vendor: vendor.map(str::to_owned),
        step: step.map(str::to_owned),
        open_after: None,
        reopen_window: RuleRef {
            file: "awfdrs.yaml".to_owned(),
            key: "detector.reopen_window_secs".to_owned(),
        },
    }
}

/// A vendor that serves this tenant's other calls, with nobody else failing.
pub fn quiet_vendor(vendor: &str, workflow: &str) -> VendorFacts {
    VendorFacts {
        vendor: vendor.to_owned(),
        window_secs: 900,
        breaker: Some(BreakerFacts {
            state: "CLOSED".to_owned(),
            failure_rate: 0.05,
            opened_at: None,
        }),
        tenant_workflows_failing: vec![workflow.to_owned()],
        tenant_calls: 200,
        tenant_failures: 5,
        tenant_successes_elsewhere: 150,
        other_tenants_failing: 0,
        other_tenant_failures: 0,
        other_tenant_successes: 900,
        other_tenants_same_code: 0,
    }
}

/// An incident with `count` failures of `code`, first at minute 0, last at
/// minute 10, decided at minute 11; its rule and policy as given.
pub fn incident(
    workflow: &str,
    code: &str,
    vendor: Option<&str>,
    rule: ErrorRule,
    count: i64,
    message: &str,
) -> AnalysisInput {
    let inputs = inputs(workflow, code, vendor, Some("charge"));
    let policy = rule.retry_policy.as_deref().map(policy);
    AnalysisInput {
        incident: IncidentFacts {
            id: id(0x1_0001),
            tenant_id: tenant_id(),
            signature: format!("{TENANT}:{workflow}:{code}"),
            inputs,
            event_count: count,
            first_seen: t(0),
            last_seen: t(10),
            reopen_count: 0,
            message: Some(message.to_owned()),
            correlation_id: "corr-1".to_owned(),
        },
        trigger: Trigger::Opened,
        supersedes: None,
        rule_ref: RuleRef {
            file: "error_codes.yaml".to_owned(),
            key: format!("codes.{code}"),
        },
        rule,
        policy,
        failures: FailureSignals {
            count,
            first_at: t(0),
            last_at: t(10),
            sample_event_ids: event_ids()
                .into_iter()
                .take(usize::try_from(count).unwrap_or(0))
                .collect(),
            http_statuses: Vec::new(),
            producer_retryable: 0,
            producer_not_retryable: 0,
            retry_after_secs: None,
            distinct_runs: 1,
            releases: Vec::new(),
        },
        step: StepHistory {
            successes_before: 0,
            last_success_at: None,
            last_success_event: None,
            lookback_secs: 86_400,
        },
        vendor: vendor.map(|v| quiet_vendor(v, workflow)),
        past: Vec::new(),
        at: t(11),
    }
}

pub fn statuses(list: &[(i32, i64)]) -> Vec<StatusCount> {
    list.iter()
        .map(|&(status, count)| StatusCount { status, count })
        .collect()
}

/// A past incident of the tenant, with its message's vector.
pub fn past(
    n: u128,
    signature: &str,
    code: &str,
    vendor: Option<&str>,
    category: Category,
    message: &str,
    first_seen: DateTime<Utc>,
) -> PastIncident {
    PastIncident {
        id: id(n),
        signature: signature.to_owned(),
        workflow_id: signature.split(':').nth(1).unwrap_or("wf").to_owned(),
        error_code: code.to_owned(),
        vendor: vendor.map(str::to_owned),
        category,
        message: Some(message.to_owned()),
        vector: similar::vector(message),
        status: "RESOLVED".to_owned(),
        first_seen,
        resolved_at: Some(first_seen + chrono::Duration::minutes(7)),
        resolved_by: Some("auto-resolve".to_owned()),
        resolved_by_retry: None,
        resolved_after_successes: Some(3),
    }
}

/// A small deterministic generator (xorshift), so random histories and
/// inputs are the same on every run.
pub struct Seeded(pub u64);

impl Seeded {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> i64 {
        i64::try_from(self.next() % n).expect("small")
    }

    /// One of `from`.
    pub fn one_of<T: Copy>(&mut self, from: &[T]) -> T {
        let n = u64::try_from(from.len()).expect("small");
        from[usize::try_from(self.next() % n).expect("small")]
    }
}
