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
        return Scored::new(
            CauseKind::VendorOutage,
            0.0,
            0.0,
            "the failures name no vendor".to_owned(),
            vec![fact("the failures name no vendor")],
            "the failures name no vendor".to_owned(),
        );
    };
    let workflows = i64::try_from(v.tenant_workflows_failing.len()).unwrap_or(i64::MAX);
    let mut score = 0.0;
    if workflows >= 2 {
        score += 0.25 + 0.05 * capped(workflows - 2, 3);
    }
    if v.other_tenants_failing >= 1 {
        score += 0.25 + 0.05 * capped(v.other_tenants_failing - 1, 3);
    }
    let breaker_state = v.breaker.as_ref().map(|b| b.state.as_str());
    score += match breaker_state {
        Some("OPEN") => 0.25,
        Some("HALF_OPEN") => 0.1,
        _ => 0.0,
    };
    let rate = error_rate(v);
    score += 0.15 * rate;
    let tenant_specific = matches!(
        class.category,
        Category::Auth | Category::Validation | Category::Permanent
    );
    if tenant_specific {
        score *= 0.3;
    } else if class.category == Category::RateLimited {
        score *= 0.5;
    }

    let against = if workflows < 2 && v.other_tenants_failing == 0 {
        format!(
            "only this workflow of this tenant is failing with {}",
            v.vendor
        )
    } else if tenant_specific || class.category == Category::RateLimited {
        format!(
            "{} failures are not what a vendor outage causes",
            names::category(class.category)
        )
    } else {
        format!(
            "{}'s breaker is {}",
            v.vendor,
            breaker_state.unwrap_or("unknown")
        )
    };
    let summary = format!(
        "{} is failing for {} of this tenant's workflows and {} other tenants; breaker {}",
        v.vendor,
        workflows,
        v.other_tenants_failing,
        breaker_state.unwrap_or("unknown")
    );
    Scored::new(
        CauseKind::VendorOutage,
        score,
        0.95,
        summary,
        outage_evidence(input, v, workflows, rate),
        against,
    )
}

/// The failures across workflows and tenants, then the breaker, then the
/// error rate.
fn outage_evidence(
    input: &AnalysisInput,
    v: &VendorFacts,
    workflows: i64,
    rate: f64,
) -> Vec<Evidence> {
    let f = &input.failures;
    let mut evidence = vec![
        Evidence {
            count: Some(workflows),
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
            "error rate of calls to {} across tenants: {rate:.2}",
            v.vendor
        ))
    });
    evidence
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
    let rate_limited = class.category == Category::RateLimited;
    let mut score = 0.0;
    if rate_limited {
        score += 0.4;
    }
    score += 0.35 * share(throttled, f.count);
    if f.retry_after_secs.is_some() {
        score += 0.15;
    }

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
    evidence.push(fact(format!(
        "classified {}",
        names::category(class.category)
    )));

    let against = if throttled == 0 && f.retry_after_secs.is_none() {
        "no failure carried HTTP 429 or a Retry-After".to_owned()
    } else if !rate_limited {
        format!(
            "the failures are classified {}, not rate_limited",
            names::category(class.category)
        )
    } else {
        format!("only {throttled} of {} failures carried HTTP 429", f.count)
    };
    Scored::new(
        CauseKind::VendorThrottling,
        score,
        0.95,
        format!(
            "{} is throttling: {throttled} of {} failures were HTTP 429{}",
            input
                .incident
                .inputs
                .vendor
                .as_deref()
                .unwrap_or("the vendor"),
            f.count,
            f.retry_after_secs
                .map_or_else(String::new, |s| format!(", asking to wait {s}s"))
        ),
        evidence,
        against,
    )
}
