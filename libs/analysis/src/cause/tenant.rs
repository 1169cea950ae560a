//! The hypotheses about the tenant's own side: its configuration
//! (credentials or requests no other tenant gets wrong), a regression of
//! one workflow (failing after a run of successes, or from a release on),
//! and a data problem (one step failing the same way on many runs while
//! the vendor serves others).

use awfdrs_domain::decision::{Category, CauseKind, Classification, Evidence};

use super::{Scored, capped, fact, own_events};
use crate::input::{AnalysisInput, ReleaseFacts};
use crate::names;

/// Successes of the step before the first failure that make "it used to
/// work" a fact rather than an accident.
const RUN_OF_SUCCESSES: i64 = 3;

/// Runs failing the same way that make the data, not chance, the suspect.
const MANY_RUNS: i64 = 3;

/// The tenant's configuration: auth and validation failures that no other
/// tenant sees with the same code.
pub(crate) fn configuration(input: &AnalysisInput, class: &Classification) -> Scored {
    let code = &input.incident.inputs.error_code;
    let mut score = match class.category {
        Category::Auth => 0.55,
        Category::Validation => 0.4,
        _ => 0.0,
    };
    let mut evidence = vec![Evidence {
        count: Some(input.failures.count),
        first_at: Some(input.failures.first_at),
        last_at: Some(input.failures.last_at),
        event_ids: own_events(input),
        ..fact(format!(
            "the failures are classified {}",
            names::category(class.category)
        ))
    }];
    let mut against = format!(
        "{} failures are not a matter of configuration",
        names::category(class.category)
    );
    if let (Some(v), true) = (&input.vendor, score > 0.0) {
        if v.other_tenants_same_code == 0 {
            score += 0.2;
        } else {
            score -= 0.3;
            against = format!("{} other tenants see {code} too", v.other_tenants_same_code);
        }
        evidence.push(Evidence {
            count: Some(v.other_tenants_same_code),
            window_secs: Some(v.window_secs),
            ..fact(format!("other tenants seeing {code} from {}", v.vendor))
        });
        if v.tenant_successes_elsewhere == 0 && v.tenant_failures > 0 {
            score += 0.15;
        } else if class.category == Category::Validation {
            score -= 0.1;
        }
        evidence.push(Evidence {
            count: Some(v.tenant_successes_elsewhere),
            window_secs: Some(v.window_secs),
            ..fact(format!(
                "this tenant's successful calls to {} in other workflows or steps",
                v.vendor
            ))
        });
        if score > 0.0 && v.other_tenants_same_code == 0 {
            against = "the code is seen from this tenant only".to_owned();
        }
    }
    let seen_elsewhere = input.vendor.as_ref().map(|v| v.other_tenants_same_code);
    let summary = match (score > 0.0, seen_elsewhere) {
        (false, _) => against.clone(),
        (true, Some(0)) => format!(
            "this tenant's own {} settings: {code} is seen from this tenant only",
            names::category(class.category)
        ),
        (true, Some(n)) => format!(
            "this tenant's own {} settings, though {n} other tenants see {code} too",
            names::category(class.category)
        ),
        (true, None) => format!(
            "this tenant's own {} settings",
            names::category(class.category)
        ),
    };
    Scored::new(
        CauseKind::TenantConfiguration,
        score,
        0.95,
        summary,
        evidence,
        against,
    )
}

/// A regression of one workflow: the step failing after a run of
/// successes, and, where events carry releases, from one release on.
pub(crate) fn regression(input: &AnalysisInput, class: &Classification) -> Scored {
    let step = &input.step;
    let inputs = &input.incident.inputs;
    let place = match &inputs.step {
        Some(s) => format!("{}/{s}", inputs.workflow_id),
        None => inputs.workflow_id.clone(),
    };
    let mut score = 0.0;
    if step.successes_before >= RUN_OF_SUCCESSES {
        score += 0.3 + 0.2 * capped(step.successes_before, 20) / 20.0;
    }
    let mut evidence = vec![Evidence {
        count: Some(step.successes_before),
        window_secs: Some(step.lookback_secs),
        last_at: step.last_success_at,
        event_ids: step.last_success_event.into_iter().collect(),
        ..fact(format!("successes of {place} before the first failure"))
    }];
    let boundary = release_boundary(&input.failures.releases);
    if let Some((before, first)) = boundary {
        score += 0.35;
        evidence.push(Evidence {
            count: Some(first.failures),
            first_at: Some(first.first_at),
            ..fact(format!(
                "release {} is the first that failed ({} failures, {} successes); {} before it had {} successes, {} failures",
                first.release, first.failures, first.successes, before.release, before.successes, before.failures
            ))
        });
    }
    if spread(input) {
        score *= 0.5;
    }
    if matches!(
        class.category,
        Category::RateLimited | Category::VendorOutage
    ) {
        score *= 0.6;
    }
    let against = if step.successes_before < RUN_OF_SUCCESSES && boundary.is_none() {
        format!(
            "{place} had {} successes before failing and no release changed",
            step.successes_before
        )
    } else if spread(input) {
        "the vendor is failing beyond this workflow".to_owned()
    } else {
        format!("no release of {place} marks where it started failing")
    };
    let summary = match boundary {
        Some((_, first)) => format!("{place} fails from release {} on", first.release),
        None => format!(
            "{place} started failing after {} successes",
            step.successes_before
        ),
    };
    Scored::new(
        CauseKind::WorkflowRegression,
        score,
        0.9,
        summary,
        evidence,
        against,
    )
}

/// The release before the first that failed, and that first one, when an
/// earlier release of the step succeeded.
fn release_boundary(releases: &[ReleaseFacts]) -> Option<(&ReleaseFacts, &ReleaseFacts)> {
    let first_failing = releases.iter().position(|r| r.failures > 0)?;
    let before = releases[..first_failing]
        .iter()
        .rev()
        .find(|r| r.successes > 0)?;
    Some((before, &releases[first_failing]))
}

/// Whether the vendor fails beyond this workflow: other workflows of the
/// tenant, or other tenants.
fn spread(input: &AnalysisInput) -> bool {
    input
        .vendor
        .as_ref()
        .is_some_and(|v| v.tenant_workflows_failing.len() >= 2 || v.other_tenants_failing >= 1)
}

/// A data problem: the same step failing the same way across many runs
/// while the vendor serves this tenant's other calls, or other tenants.
pub(crate) fn data_problem(input: &AnalysisInput, class: &Classification) -> Scored {
    let f = &input.failures;
    let runs = f.distinct_runs;
    let mut score = 0.0;
    if runs >= MANY_RUNS {
        score += 0.3 + 0.25 * capped(runs, 25) / 25.0;
    }
    let mut evidence = vec![Evidence {
        count: Some(runs),
        first_at: Some(f.first_at),
        last_at: Some(f.last_at),
        event_ids: own_events(input),
        ..fact(format!(
            "distinct runs failing with {}",
            input.incident.inputs.error_code
        ))
    }];
    let mut serves_others = false;
    if let Some(v) = &input.vendor {
        serves_others = v.tenant_successes_elsewhere > 0 || v.other_tenant_successes > 0;
        score += if v.tenant_successes_elsewhere > 0 {
            0.15
        } else if v.other_tenant_successes > 0 {
            0.05
        } else {
            0.0
        };
        evidence.push(Evidence {
            count: Some(v.tenant_successes_elsewhere + v.other_tenant_successes),
            window_secs: Some(v.window_secs),
            ..fact(format!(
                "successful calls to {} elsewhere ({} of this tenant's, {} of other tenants')",
                v.vendor, v.tenant_successes_elsewhere, v.other_tenant_successes
            ))
        });
    }
    score *= match class.category {
        Category::Validation | Category::Permanent => 1.0,
        Category::Transient | Category::VendorOutage => 0.5,
        Category::Auth | Category::RateLimited => 0.3,
    };
    if matches!(class.category, Category::Validation | Category::Permanent) && score > 0.0 {
        score += 0.1;
    }
    if input
        .vendor
        .as_ref()
        .is_some_and(|v| v.tenant_workflows_failing.len() >= 2)
    {
        score *= 0.6;
    }
    if release_boundary(&f.releases).is_some() {
        score *= 0.6;
    }
    let against = if runs < MANY_RUNS {
        format!("only {runs} runs failed")
    } else if !serves_others {
        "the vendor serves no other call to compare with".to_owned()
    } else {
        format!(
            "{} failures need not come from the data sent",
            names::category(class.category)
        )
    };
    Scored::new(
        CauseKind::DataProblem,
        score,
        0.9,
        format!("the data sent: {runs} runs fail the same way while the vendor serves other calls"),
        evidence,
        against,
    )
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn release(name: &str, failures: i64, successes: i64) -> ReleaseFacts {
        ReleaseFacts {
            release: name.to_owned(),
            failures,
            successes,
            first_at: Utc.timestamp_opt(0, 0).single().expect("valid"),
        }
    }

    #[test]
    fn the_boundary_is_the_first_failing_release_after_one_that_succeeded() {
        let releases = [
            release("1", 0, 50),
            release("2", 0, 0),
            release("3", 9, 1),
            release("4", 5, 0),
        ];
        let (before, first) = release_boundary(&releases).expect("a boundary");
        assert_eq!(
            (before.release.as_str(), first.release.as_str()),
            ("1", "3")
        );
    }

    #[test]
    fn there_is_no_boundary_when_the_first_release_already_failed_or_none_failed() {
        assert!(release_boundary(&[release("1", 3, 10), release("2", 4, 0)]).is_none());
        assert!(release_boundary(&[release("1", 0, 10), release("2", 0, 7)]).is_none());
        assert!(release_boundary(&[]).is_none());
    }
}
