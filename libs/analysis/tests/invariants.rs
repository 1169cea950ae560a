//! What holds for every decision, checked over many seeded random inputs:
//! every kind considered and ranked, "unknown" winning exactly when nothing
//! reaches the threshold, the rejected cause being another kind, a retry
//! within its policy's cap, a hold only behind an open breaker, cited events
//! the tenant's own, and the same bytes for the same input.

mod common;

use std::collections::BTreeSet;

use awfdrs_analysis::cause::THRESHOLD;
use awfdrs_analysis::similar::LIMIT;
use awfdrs_analysis::{AnalysisInput, Analyst, BreakerFacts, LocalAnalyst, ReleaseFacts};
use awfdrs_domain::decision::{ActionKind, Category, CauseKind, Severity};
use uuid::Uuid;

fn random_input(rng: &mut common::Seeded) -> AnalysisInput {
    let category = rng.one_of(&[
        Category::Transient,
        Category::VendorOutage,
        Category::RateLimited,
        Category::Auth,
        Category::Validation,
        Category::Permanent,
    ]);
    let severity = rng.one_of(&[
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]);
    let policy = rng.one_of(&[
        None,
        Some("standard"),
        Some("rate_limited"),
        Some("payment_timeout"),
    ]);
    let vendor = rng.one_of(&[None, Some("stripe"), Some("adyen")]);
    let count = 1 + rng.below(200);
    let mut input = common::incident(
        "checkout",
        "some_code",
        vendor,
        common::rule(severity, category, policy, "a rule"),
        count,
        rng.one_of(&[
            "timed out",
            "connection reset",
            "invalid field",
            "429 slow down",
            "",
        ]),
    );
    input.at = common::t(10 + rng.below(60));
    input.failures.sample_event_ids = (0..rng.below(15))
        .map(|n| common::id(0xE000 + n as u128))
        .collect();
    let statuses: Vec<(i32, i64)> = (0..rng.below(3))
        .map(|_| {
            (
                rng.one_of(&[200, 400, 401, 403, 404, 422, 429, 500, 502, 503]),
                1 + rng.below(50),
            )
        })
        .collect();
    input.failures.http_statuses = common::statuses(&statuses);
    input.failures.producer_retryable = rng.below(5);
    input.failures.producer_not_retryable = rng.below(5);
    input.failures.retry_after_secs = rng.one_of(&[None, Some(5), Some(90), Some(4_000)]);
    input.failures.distinct_runs = rng.below(40);
    if rng.below(2) == 0 {
        input.failures.releases = vec![
            ReleaseFacts {
                release: "r1".to_owned(),
                failures: rng.below(3),
                successes: rng.below(30),
                first_at: common::t(-100),
            },
            ReleaseFacts {
                release: "r2".to_owned(),
                failures: rng.below(30),
                successes: rng.below(3),
                first_at: common::t(-1),
            },
        ];
    }
    input.step.successes_before = rng.below(50);
    if let Some(v) = input.vendor.as_mut() {
        v.breaker = rng
            .one_of(&[None, Some("CLOSED"), Some("OPEN"), Some("HALF_OPEN")])
            .map(|state| BreakerFacts {
                state: state.to_owned(),
                failure_rate: 0.5,
                opened_at: Some(common::t(1)),
            });
        v.tenant_workflows_failing = (0..1 + rng.below(4)).map(|n| format!("wf{n}")).collect();
        v.tenant_calls = rng.below(500);
        v.tenant_failures = rng.below(500);
        v.tenant_successes_elsewhere = rng.below(100);
        v.other_tenants_failing = rng.below(6);
        v.other_tenant_failures = rng.below(1000);
        v.other_tenant_successes = rng.below(1000);
        v.other_tenants_same_code = rng.below(3);
    }
    input.past = (0..rng.below(30))
        .map(|n| {
            common::past(
                0x7000 + n as u128,
                rng.one_of(&["acme:checkout:some_code", "acme:a:b"]),
                "code",
                rng.one_of(&[None, Some("stripe"), Some("adyen")]),
                rng.one_of(&[Category::Transient, Category::Auth]),
                rng.one_of(&["timed out", "connection reset by peer", "nope"]),
                common::t(-rng.below(1000)),
            )
        })
        .collect();
    input
}

#[test]
fn every_decision_keeps_the_engines_promises() {
    let mut rng = common::Seeded(0xDEC1_5104);
    let analyst = LocalAnalyst::new();
    for case in 0..500 {
        let input = random_input(&mut rng);
        let d = analyst.analyze(&input);
        let ctx = format!("case {case}: {input:#?}");

        let ranked = &d.root_cause.ranked;
        let kinds: BTreeSet<String> = ranked.iter().map(|h| format!("{:?}", h.kind)).collect();
        assert_eq!(kinds.len(), 6, "{ctx}");
        assert!(
            ranked
                .windows(2)
                .all(|w| w[0].confidence >= w[1].confidence),
            "{ctx}"
        );
        assert!(
            ranked.iter().all(|h| (0.0..=1.0).contains(&h.confidence)),
            "{ctx}"
        );
        let best_known = ranked
            .iter()
            .filter(|h| h.kind != CauseKind::Unknown)
            .map(|h| h.confidence)
            .fold(0.0, f64::max);
        assert_eq!(
            d.root_cause.hypothesis.kind == CauseKind::Unknown,
            best_known < THRESHOLD,
            "{ctx}"
        );
        let rejected = d.root_cause.rejected.as_ref().expect("a rejected cause");
        assert_ne!(rejected.kind, d.root_cause.hypothesis.kind, "{ctx}");

        let r = &d.recommended_action;
        match r.action {
            ActionKind::Retry => {
                let (_, policy) = input.policy.as_ref().expect("a retry has a policy");
                let ms = r.next_delay_ms.expect("a retry has a delay");
                assert!(u128::from(ms) <= policy.max_delay.as_millis(), "{ctx}");
                assert!(d.classification.retryable, "{ctx}");
            }
            ActionKind::Hold => {
                let state = input
                    .vendor
                    .as_ref()
                    .and_then(|v| v.breaker.as_ref())
                    .map(|b| b.state.as_str());
                assert_eq!(state, Some("OPEN"), "{ctx}");
                assert_eq!(r.next_delay_ms, None, "{ctx}");
            }
            ActionKind::Escalate | ActionKind::None => assert_eq!(r.next_delay_ms, None, "{ctx}"),
        }
        if d.classification.severity == Severity::Critical {
            assert_eq!(r.action, ActionKind::Escalate, "{ctx}");
        }

        let own: BTreeSet<Uuid> = input
            .failures
            .sample_event_ids
            .iter()
            .copied()
            .chain(input.step.last_success_event)
            .collect();
        for e in ranked.iter().flat_map(|h| &h.evidence) {
            assert!(e.event_ids.len() <= 10, "{ctx}");
            assert!(e.event_ids.iter().all(|id| own.contains(id)), "{ctx}");
        }

        assert!(d.similar_incidents.len() <= LIMIT, "{ctx}");
        assert!(
            d.similar_incidents
                .iter()
                .all(|s| s.incident_id != input.incident.id),
            "{ctx}"
        );

        let again = analyst.analyze(&input);
        assert_eq!(
            serde_json::to_vec(&d).expect("serialises"),
            serde_json::to_vec(&again).expect("serialises"),
            "{ctx}"
        );
    }
}

#[test]
fn a_producer_saying_not_retryable_by_majority_always_wins() {
    let mut rng = common::Seeded(42);
    for case in 0..300 {
        let mut input = random_input(&mut rng);
        input.failures.producer_not_retryable = input.failures.producer_retryable + 1;
        let d = LocalAnalyst::new().analyze(&input);
        assert!(!d.classification.retryable, "case {case}");
        assert_ne!(
            d.recommended_action.action,
            ActionKind::Retry,
            "case {case}"
        );
        assert_ne!(d.recommended_action.action, ActionKind::Hold, "case {case}");
    }
}
