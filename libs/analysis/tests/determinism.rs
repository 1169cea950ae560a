//! The same input gives a byte-identical decision, whatever order the store
//! listed the history in, and the decision reads back as it was written.

mod common;

use awfdrs_analysis::{AnalysisInput, Analyst, LocalAnalyst, Trigger};
use awfdrs_domain::decision::DecisionV1;

fn scenarios() -> Vec<(&'static str, AnalysisInput)> {
    vec![
        ("vendor outage", common::vendor_outage_with_history()),
        ("regression", common::regression()),
        ("bad credentials", common::bad_credentials()),
        ("validation errors", common::validation_errors()),
        ("throttling", common::throttling()),
        ("data problem", common::data_problem()),
        ("noise", common::noise_blip()),
    ]
}

fn bytes(input: &AnalysisInput) -> Vec<u8> {
    serde_json::to_vec(&LocalAnalyst::new().analyze(input)).expect("serialises")
}

#[test]
fn the_same_input_twice_gives_byte_identical_decisions() {
    for (name, input) in scenarios() {
        assert_eq!(bytes(&input), bytes(&input.clone()), "{name}");
    }
}

#[test]
fn the_order_of_the_history_does_not_change_the_decision() {
    let input = common::vendor_outage_with_history();
    let mut reversed = input.clone();
    reversed.past.reverse();
    let mut rotated = input.clone();
    rotated.past.rotate_left(1);
    assert_eq!(bytes(&input), bytes(&reversed));
    assert_eq!(bytes(&input), bytes(&rotated));
}

#[test]
fn a_decision_reads_back_equal_to_what_was_written() {
    for (name, input) in scenarios() {
        let decision = LocalAnalyst::new().analyze(&input);
        let back: DecisionV1 =
            serde_json::from_slice(&serde_json::to_vec(&decision).expect("serialises"))
                .expect("reads back");
        assert_eq!(back, decision, "{name}");
    }
}

#[test]
fn a_decision_names_its_engine_trigger_and_the_decision_it_supersedes() {
    let mut input = common::vendor_outage();
    let first = LocalAnalyst::new().analyze(&input);
    assert_eq!(first.engine.name, awfdrs_analysis::LOCAL_ENGINE);
    assert_eq!(first.engine.version, awfdrs_analysis::LOCAL_ENGINE_VERSION);
    assert_eq!(first.trigger, "opened");
    assert_eq!(first.id, DecisionV1::id_for(input.incident.id, "opened"));
    assert_eq!(first.created_at, input.at);
    assert_eq!(first.supersedes, None);

    input.trigger = Trigger::Reopened(1);
    input.supersedes = Some(first.id);
    let second = LocalAnalyst::new().analyze(&input);
    assert_eq!(second.trigger, "reopened:1");
    assert_eq!(second.supersedes, Some(first.id));
    assert_ne!(second.id, first.id);
}

#[test]
fn confidences_and_similarities_have_two_decimals() {
    for (name, input) in scenarios() {
        let d = LocalAnalyst::new().analyze(&input);
        let mut values = vec![d.confidence, d.recommended_action.confidence];
        values.extend(d.root_cause.ranked.iter().map(|h| h.confidence));
        values.extend(d.similar_incidents.iter().map(|s| s.similarity));
        for v in values {
            assert!(
                (v * 100.0 - (v * 100.0).round()).abs() < 1e-9 && (0.0..=1.0).contains(&v),
                "{name}: {v}"
            );
        }
    }
}
