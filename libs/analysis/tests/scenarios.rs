//! Realistic scenarios, one row each: the root cause, the classification
//! and the recommendation the local engine must reach.

mod common;

use awfdrs_analysis::{AnalysisInput, Analyst, LocalAnalyst};
use awfdrs_domain::decision::{ActionKind, Category, CauseKind};

struct Row {
    name: &'static str,
    input: AnalysisInput,
    cause: CauseKind,
    rejected: CauseKind,
    category: Category,
    retryable: bool,
    action: ActionKind,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "vendor outage across tenants",
            input: common::vendor_outage(),
            cause: CauseKind::VendorOutage,
            rejected: CauseKind::WorkflowRegression,
            category: Category::Transient,
            retryable: true,
            action: ActionKind::Hold,
        },
        Row {
            name: "single-workflow regression with releases",
            input: common::regression(),
            cause: CauseKind::WorkflowRegression,
            rejected: CauseKind::DataProblem,
            category: Category::Permanent,
            retryable: false,
            action: ActionKind::Escalate,
        },
        Row {
            name: "bad credentials",
            input: common::bad_credentials(),
            cause: CauseKind::TenantConfiguration,
            rejected: CauseKind::DataProblem,
            category: Category::Auth,
            retryable: false,
            action: ActionKind::Escalate,
        },
        Row {
            name: "validation errors",
            input: common::validation_errors(),
            cause: CauseKind::TenantConfiguration,
            rejected: CauseKind::DataProblem,
            category: Category::Validation,
            retryable: false,
            action: ActionKind::Escalate,
        },
        Row {
            name: "throttling by the vendor",
            input: common::throttling(),
            cause: CauseKind::VendorThrottling,
            rejected: CauseKind::DataProblem,
            category: Category::RateLimited,
            retryable: true,
            action: ActionKind::Retry,
        },
        Row {
            name: "data problem",
            input: common::data_problem(),
            cause: CauseKind::DataProblem,
            rejected: CauseKind::VendorOutage,
            category: Category::Permanent,
            retryable: false,
            action: ActionKind::Escalate,
        },
        Row {
            name: "noise: a single blip",
            input: common::noise_blip(),
            cause: CauseKind::Unknown,
            rejected: CauseKind::VendorOutage,
            category: Category::Transient,
            retryable: true,
            action: ActionKind::Retry,
        },
        Row {
            name: "noise: unexplained low-severity failures",
            input: common::noise_unexplained(),
            cause: CauseKind::Unknown,
            rejected: CauseKind::VendorOutage,
            category: Category::Permanent,
            retryable: false,
            action: ActionKind::None,
        },
    ]
}

#[test]
fn every_scenario_reaches_its_cause_classification_and_action() {
    let analyst = LocalAnalyst::new();
    let mut wrong = Vec::new();
    for row in rows() {
        let d = analyst.analyze(&row.input);
        let got = (
            d.root_cause.hypothesis.kind,
            d.root_cause.rejected.as_ref().map(|r| r.kind),
            d.classification.category,
            d.classification.retryable,
            d.recommended_action.action,
        );
        let want = (
            row.cause,
            Some(row.rejected),
            row.category,
            row.retryable,
            row.action,
        );
        if got != want {
            wrong.push(format!(
                "{}: got {got:?}, want {want:?}\n  ranked {:?}",
                row.name,
                d.root_cause
                    .ranked
                    .iter()
                    .map(|h| (h.kind, h.confidence))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_decision_considers_every_kind_of_cause_ranked_by_confidence() {
    let analyst = LocalAnalyst::new();
    for row in rows() {
        let d = analyst.analyze(&row.input);
        let ranked = &d.root_cause.ranked;
        let mut kinds: Vec<String> = ranked.iter().map(|h| format!("{:?}", h.kind)).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), 6, "{}: {kinds:?}", row.name);
        assert!(
            ranked
                .windows(2)
                .all(|w| w[0].confidence >= w[1].confidence),
            "{}: not ranked",
            row.name
        );
        assert_eq!(d.root_cause.hypothesis, ranked[0], "{}", row.name);
        assert_eq!(d.confidence, ranked[0].confidence, "{}", row.name);
        // The rejected alternative is the best other cause: "unknown" only
        // when nothing else won.
        let runner_up = ranked[1..]
            .iter()
            .find(|h| ranked[0].kind == CauseKind::Unknown || h.kind != CauseKind::Unknown)
            .expect("a runner-up");
        let rejected = d.root_cause.rejected.as_ref().expect("a rejected cause");
        assert_eq!(rejected.kind, runner_up.kind, "{}", row.name);
        assert_eq!(rejected.confidence, runner_up.confidence, "{}", row.name);
        assert!(!rejected.reason.is_empty(), "{}", row.name);
    }
}

#[test]
fn a_known_cause_is_more_confident_than_unknown_and_unknown_is_low() {
    let analyst = LocalAnalyst::new();
    for row in rows() {
        let d = analyst.analyze(&row.input);
        if row.cause == CauseKind::Unknown {
            assert!(d.confidence <= 0.3, "{}: {}", row.name, d.confidence);
        } else {
            assert!(d.confidence > 0.5, "{}: {}", row.name, d.confidence);
        }
    }
}

#[test]
fn the_outage_evidence_cites_the_breaker_the_workflows_and_the_other_tenants_by_count() {
    let d = LocalAnalyst::new().analyze(&common::vendor_outage());
    let evidence = &d.root_cause.hypothesis.evidence;
    let find = |needle: &str| {
        evidence
            .iter()
            .find(|e| e.fact.contains(needle))
            .unwrap_or_else(|| panic!("no evidence with {needle:?}: {evidence:#?}"))
    };
    assert_eq!(find("this tenant's workflows").count, Some(3));
    assert_eq!(
        find("this tenant's workflows").event_ids,
        common::event_ids()
    );
    assert_eq!(find("other tenants").count, Some(4));
    assert!(find("other tenants").event_ids.is_empty());
    assert!(find("breaker is OPEN").fact.contains("0.85"));
    assert_eq!(find("breaker is OPEN").first_at, Some(common::t(4)));
}

#[test]
fn the_regression_names_the_first_release_that_failed_and_the_last_success() {
    let d = LocalAnalyst::new().analyze(&common::regression());
    let h = &d.root_cause.hypothesis;
    assert!(h.summary.contains("2026.03.1"), "{}", h.summary);
    let release = h
        .evidence
        .iter()
        .find(|e| {
            e.fact
                .starts_with("release 2026.03.1 is the first that failed")
        })
        .expect("release evidence");
    assert_eq!(release.count, Some(25));
    let successes = &h.evidence[0];
    assert_eq!(successes.count, Some(120));
    assert_eq!(successes.event_ids, vec![common::id(0xD002)]);
}

#[test]
fn configuration_loses_when_other_tenants_see_the_same_code() {
    let mut input = common::bad_credentials();
    if let Some(v) = input.vendor.as_mut() {
        v.other_tenants_same_code = 3;
    }
    let d = LocalAnalyst::new().analyze(&input);
    let config = d
        .root_cause
        .ranked
        .iter()
        .find(|h| h.kind == CauseKind::TenantConfiguration)
        .expect("considered");
    let alone = LocalAnalyst::new().analyze(&common::bad_credentials());
    assert!(config.confidence < alone.confidence);
}

#[test]
fn without_releases_a_run_of_successes_still_points_at_a_regression() {
    let mut input = common::regression();
    input.failures.releases.clear();
    input.failures.distinct_runs = 2;
    let d = LocalAnalyst::new().analyze(&input);
    assert_eq!(d.root_cause.hypothesis.kind, CauseKind::WorkflowRegression);
    assert!(
        d.root_cause
            .hypothesis
            .summary
            .contains("after 120 successes")
    );
}
