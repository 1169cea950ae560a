//! A regression of one workflow: its step failing after a run of
//! successes, and, where events carry releases, from one release on.

use awfdrs_domain::decision::{Category, CauseKind, Classification, Evidence};

use super::{Scored, capped, fact};
use crate::input::{AnalysisInput, ReleaseFacts};

/// Successes of the step before the first failure that make "it used to
/// work" a fact rather than an accident.
const RUN_OF_SUCCESSES: i64 = 3;

/// A regression as the cause.
pub(crate) fn regression(input: &AnalysisInput, class: &Classification) -> Scored {
    let place = place(input);
    let boundary = release_boundary(&input.failures.releases);
    let summary = match boundary {
        Some((_, first)) => format!("{place} fails from release {} on", first.release),
        None => format!(
            "{place} started failing after {} successes",
            input.step.successes_before
        ),
    };
    Scored::new(
        CauseKind::WorkflowRegression,
        score(input, class.category, boundary.is_some()),
        0.9,
        summary,
        evidence(input, &place, boundary),
        against(input, &place, boundary.is_some()),
    )
}

/// A run of successes, more for a longer one; a release boundary; weaker
/// when the vendor fails beyond this workflow or the failure is the
/// vendor's kind.
fn score(input: &AnalysisInput, category: Category, boundary: bool) -> f64 {
    let successes = input.step.successes_before;
    let mut score = 0.0;
    if successes >= RUN_OF_SUCCESSES {
        score += 0.3 + 0.2 * capped(successes, 20) / 20.0;
    }
    if boundary {
        score += 0.35;
    }
    if spread(input) {
        score *= 0.5;
    }
    if matches!(category, Category::RateLimited | Category::VendorOutage) {
        score *= 0.6;
    }
    score
}

/// The run of successes with the last one's event, then the release
/// boundary.
fn evidence(
    input: &AnalysisInput,
    place: &str,
    boundary: Option<(&ReleaseFacts, &ReleaseFacts)>,
) -> Vec<Evidence> {
    let step = &input.step;
    let mut evidence = vec![Evidence {
        count: Some(step.successes_before),
        window_secs: Some(step.lookback_secs),
        last_at: step.last_success_at,
        event_ids: step.last_success_event.into_iter().collect(),
        ..fact(format!("successes of {place} before the first failure"))
    }];
    if let Some((before, first)) = boundary {
        evidence.push(Evidence {
            count: Some(first.failures),
            first_at: Some(first.first_at),
            ..fact(format!(
                "release {} is the first that failed ({} failures, {} successes); {} before it had {} successes, {} failures",
                first.release, first.failures, first.successes, before.release, before.successes, before.failures
            ))
        });
    }
    evidence
}

/// The strongest fact against a regression.
fn against(input: &AnalysisInput, place: &str, boundary: bool) -> String {
    if input.step.successes_before < RUN_OF_SUCCESSES && !boundary {
        format!(
            "{place} had {} successes before failing and no release changed",
            input.step.successes_before
        )
    } else if spread(input) {
        "the vendor is failing beyond this workflow".to_owned()
    } else {
        format!("no release of {place} marks where it started failing")
    }
}

/// `workflow/step`, or the workflow alone.
fn place(input: &AnalysisInput) -> String {
    let inputs = &input.incident.inputs;
    match &inputs.step {
        Some(s) => format!("{}/{s}", inputs.workflow_id),
        None => inputs.workflow_id.clone(),
    }
}

/// The release before the first that failed, and that first one, when an
/// earlier release of the step succeeded.
pub(super) fn release_boundary(
    releases: &[ReleaseFacts],
) -> Option<(&ReleaseFacts, &ReleaseFacts)> {
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
