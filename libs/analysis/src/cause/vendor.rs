//! The hypotheses about the vendor: an outage (the vendor failing across
//! workflows or tenants, its breaker, its error rate) and throttling (429s,
//! `Retry-After`). Facts about other tenants are counts only.

use awfdrs_domain::decision::{Category, CauseKind, Classification, Evidence};

use super::{Scored, capped, fact, own_events, share};
use crate::classify::status_count;
use crate::input::{AnalysisInput, VendorFacts};
use crate::names;

/// A vendor outage: the same vendor failing for several of the tenant's
/// workflows, or for other tenants, in the window; an open breaker; a high
/// error rate.
pub(crate) fn outage(input: &AnalysisInput, class: &Classification) -> Scored {
    let Some(v) = &input.vendor else {
        let none = "the failures name no vendor";
        return Scored::new(
            CauseKind::VendorOutage,
            0.0,
            0.0,
            none.to_owned(),
            vec![fact(none)],
            none.to_owned(),
        );
    };
    Scored::new(
        CauseKind::VendorOutage,
        outage_score(v, class.category),
        0.95,
        format!(
            "{} is failing for {} of this tenant's workflows and {} other tenants; breaker {}",
            v.vendor,
            v.tenant_workflows_failing.len(),
            v.other_tenants_failing,
            breaker_state(v)
        ),
        outage_evidence(input, v),
        outage_against(v, class.category),
    )
}

/// Spread across the tenant's workflows and across tenants, the breaker,
/// the error rate; weakened for failures an outage does not cause.
fn outage_score(v: &VendorFacts, category: Category) -> f64 {
    let workflows = failing_workflows(v);
    let mut score = 0.0;
    if workflows >= 2 {
        score += 0.25 + 0.05 * capped(workflows - 2, 3);
    }
    if v.other_tenants_failing >= 1 {
        score += 0.25 + 0.05 * capped(v.other_tenants_failing - 1, 3);
    }
    score += match breaker_state(v) {
        "OPEN" => 0.25,
        "HALF_OPEN" => 0.1,
        _ => 0.0,
    };
    score += 0.15 * error_rate(v);
    if tenant_specific(category) {
        score * 0.3
    } else if category == Category::RateLimited {
        score * 0.5
    } else {
        score
    }
}

/// The strongest fact against an outage.
fn outage_against(v: &VendorFacts, category: Category) -> String {
    if failing_workflows(v) < 2 && v.other_tenants_failing == 0 {
        format!(
            "only this workflow of this tenant is failing with {}",
            v.vendor
        )
    } else if tenant_specific(category) || category == Category::RateLimited {
        format!(
            "{} failures are not what a vendor outage causes",
            names::category(category)
        )
    } else {
        format!("{}'s breaker is {}", v.vendor, breaker_state(v))
    }
}

/// The failures across workflows and tenants, then the breaker, then the
/// error rate.
fn outage_evidence(input: &AnalysisInput, v: &VendorFacts) -> Vec<Evidence> {
    let f = &input.failures;
    let mut evidence = vec![
        Evidence {
            count: Some(failing_workflows(v)),
            window_secs: Some(v.window_secs),
            first_at: Some(f.first_at),
            last_at: Some(f.last_at),
            event_ids: own_events(input),
            ..fact(format!(
                "this tenant's workflows failing with {}: {}",
                v.vendor,
                v.tenant_workflows_failing.join(", ")
            ))
        },
        Evidence {
            count: Some(v.other_tenants_failing),
            window_secs: Some(v.window_secs),
            ..fact(format!(
                "other tenants failing with {} ({} failures, {} successes)",
                v.vendor, v.other_tenant_failures, v.other_tenant_successes
            ))
        },
    ];
    if let Some(b) = &v.breaker {
        evidence.push(Evidence {
            first_at: b.opened_at,
            ..fact(format!(
                "{}'s breaker is {} at a failure rate of {:.2}",
                v.vendor, b.state, b.failure_rate
            ))
        });
    }
    evidence.push(Evidence {
        count: Some(v.tenant_failures + v.other_tenant_failures),
        window_secs: Some(v.window_secs),
        ..fact(format!(
            "error rate of calls to {} across tenants: {:.2}",
            v.vendor,
            error_rate(v)
        ))
    });
    evidence
}

/// Failures that come from the tenant's own side, not the vendor's.
fn tenant_specific(category: Category) -> bool {
    matches!(
        category,
        Category::Auth | Category::Validation | Category::Permanent
    )
}

fn failing_workflows(v: &VendorFacts) -> i64 {
    i64::try_from(v.tenant_workflows_failing.len()).unwrap_or(i64::MAX)
}

fn breaker_state(v: &VendorFacts) -> &str {
    v.breaker.as_ref().map_or("unknown", |b| b.state.as_str())
}

/// The share of the vendor's calls in the window that failed, across this
/// tenant and the others.
fn error_rate(v: &VendorFacts) -> f64 {
    let failures = v.tenant_failures + v.other_tenant_failures;
    let calls = v.tenant_calls + v.other_tenant_failures + v.other_tenant_successes;
    share(failures, calls)
}

/// Throttling: the vendor answering 429, asking to come back later.
pub(crate) fn throttling(input: &AnalysisInput, class: &Classification) -> Scored {
    let f = &input.failures;
    let throttled = status_count(f, 429);
    let vendor = input
        .incident
        .inputs
        .vendor
        .as_deref()
        .unwrap_or("the vendor");
    let wait = f
        .retry_after_secs
        .map_or_else(String::new, |s| format!(", asking to wait {s}s"));
    Scored::new(
        CauseKind::VendorThrottling,
        throttling_score(input, class.category, throttled),
        0.95,
        format!(
            "{vendor} is throttling: {throttled} of {} failures were HTTP 429{wait}",
            f.count
        ),
        throttling_evidence(input, class.category, throttled),
        throttling_against(input, class.category, throttled),
    )
}

/// The classification, the share of 429s, a `Retry-After`.
fn throttling_score(input: &AnalysisInput, category: Category, throttled: i64) -> f64 {
    let f = &input.failures;
    let mut score = 0.35 * share(throttled, f.count);
    if category == Category::RateLimited {
        score += 0.4;
    }
    if f.retry_after_secs.is_some() {
        score += 0.15;
    }
    score
}

/// The 429s with the events, the `Retry-After`, the classification.
fn throttling_evidence(input: &AnalysisInput, category: Category, throttled: i64) -> Vec<Evidence> {
    let f = &input.failures;
    let mut evidence = vec![Evidence {
        count: Some(throttled),
        first_at: Some(f.first_at),
        last_at: Some(f.last_at),
        event_ids: if throttled > 0 {
            own_events(input)
        } else {
            Vec::new()
        },
        ..fact(format!(
            "{throttled} of {} failures carried HTTP 429",
            f.count
        ))
    }];
    if let Some(secs) = f.retry_after_secs {
        evidence.push(fact(format!("the vendor asked to retry after {secs}s")));
    }
    evidence.push(fact(format!("classified {}", names::category(category))));
    evidence
}

/// The strongest fact against throttling.
fn throttling_against(input: &AnalysisInput, category: Category, throttled: i64) -> String {
    let f = &input.failures;
    if throttled == 0 && f.retry_after_secs.is_none() {
        "no failure carried HTTP 429 or a Retry-After".to_owned()
    } else if category != Category::RateLimited {
        format!(
            "the failures are classified {}, not rate_limited",
            names::category(category)
        )
    } else {
        format!("only {throttled} of {} failures carried HTTP 429", f.count)
    }
}
