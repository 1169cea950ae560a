//! A data problem: one step failing the same way across many runs while
//! the vendor serves the tenant's other calls, or other tenants.

use awfdrs_domain::decision::{Category, CauseKind, Classification, Evidence};

use super::regression::release_boundary;
use super::{Scored, capped, fact, own_events};
use crate::input::AnalysisInput;
use crate::names;

/// Runs failing the same way that make the data, not chance, the suspect.
const MANY_RUNS: i64 = 3;

/// The data sent as the cause.
pub(crate) fn data_problem(input: &AnalysisInput, class: &Classification) -> Scored {
    let runs = input.failures.distinct_runs;
    let served = input.vendor.as_ref().map_or(0, |v| {
        v.tenant_successes_elsewhere + v.other_tenant_successes
    });
    Scored::new(
        CauseKind::DataProblem,
        score(input, class.category),
        0.9,
        format!(
            "the data sent: {runs} failing runs of one step, while the vendor served {served} other calls"
        ),
        evidence(input),
        against(input, class.category),
    )
}

/// Many runs, more for more; the vendor serving the tenant's other calls
/// (or at least other tenants); the request's kind of failure. Weaker when
/// several workflows fail or a release explains it better.
fn score(input: &AnalysisInput, category: Category) -> f64 {
    let runs = input.failures.distinct_runs;
    let mut score = 0.0;
    if runs >= MANY_RUNS {
        score += 0.3 + 0.25 * capped(runs, 25) / 25.0;
    }
    if let Some(v) = &input.vendor {
        score += if v.tenant_successes_elsewhere > 0 {
            0.15
        } else if v.other_tenant_successes > 0 {
            0.05
        } else {
            0.0
        };
    }
    score *= match category {
        Category::Validation | Category::Permanent => 1.0,
        Category::Transient | Category::VendorOutage => 0.5,
        Category::Auth | Category::RateLimited => 0.3,
    };
    if matches!(category, Category::Validation | Category::Permanent) && score > 0.0 {
        score += 0.1;
    }
    if input
        .vendor
        .as_ref()
        .is_some_and(|v| v.tenant_workflows_failing.len() >= 2)
    {
        score *= 0.6;
    }
    if release_boundary(&input.failures.releases).is_some() {
        score *= 0.6;
    }
    score
}

/// The failing runs with the events, then the calls the vendor served.
fn evidence(input: &AnalysisInput) -> Vec<Evidence> {
    let f = &input.failures;
    let mut evidence = vec![Evidence {
        count: Some(f.distinct_runs),
        first_at: Some(f.first_at),
        last_at: Some(f.last_at),
        event_ids: own_events(input),
        ..fact(format!(
            "distinct runs failing with {}",
            input.incident.inputs.error_code
        ))
    }];
    if let Some(v) = &input.vendor {
        evidence.push(Evidence {
            count: Some(v.tenant_successes_elsewhere + v.other_tenant_successes),
            window_secs: Some(v.window_secs),
            ..fact(format!(
                "successful calls to {} elsewhere ({} of this tenant's, {} of other tenants')",
                v.vendor, v.tenant_successes_elsewhere, v.other_tenant_successes
            ))
        });
    }
    evidence
}

/// The strongest fact against a data problem.
fn against(input: &AnalysisInput, category: Category) -> String {
    let runs = input.failures.distinct_runs;
    let serves_others = input
        .vendor
        .as_ref()
        .is_some_and(|v| v.tenant_successes_elsewhere > 0 || v.other_tenant_successes > 0);
    if runs < MANY_RUNS {
        format!("only {runs} runs failed")
    } else if !serves_others {
        "the vendor serves no other call to compare with".to_owned()
    } else {
        format!(
            "{} failures need not come from the data sent",
            names::category(category)
        )
    }
}
