//! The recommendation: retry with the policy's next delay (seeded by the
//! incident id, at least the Retry-After, at most the policy's cap), hold
//! while the breaker is open, escalate with the reason, or nothing.

mod common;

use std::time::Duration;

use awfdrs_analysis::{AnalysisInput, Analyst, BreakerFacts, LocalAnalyst};
use awfdrs_domain::decision::{ActionKind, Recommendation, Severity};
use awfdrs_safety::retry::{delay, jitter_seed};

fn recommend(input: &AnalysisInput) -> Recommendation {
    LocalAnalyst::new().analyze(input).recommended_action
}

#[test]
fn a_retry_waits_the_policys_first_delay_seeded_by_the_incident_id() {
    let input = common::noise_blip();
    let r = recommend(&input);
    let (_, policy) = common::policy("standard");
    let want = delay(
        &policy,
        1,
        Duration::from_secs(60),
        jitter_seed(&input.incident.id.to_string(), 1),
    )
    .expect("the policy allows a first retry");
    assert_eq!(r.action, ActionKind::Retry);
    assert_eq!(r.policy.as_deref(), Some("standard"));
    assert_eq!(
        r.next_delay_ms,
        Some(u64::try_from(want.as_millis()).expect("fits"))
    );
}

#[test]
fn another_incident_gets_another_jitter() {
    let delays: Vec<Option<u64>> = (0..8_u128)
        .map(|n| {
            let mut input = common::noise_blip();
            input.incident.id = common::id(0x5000 + n);
            recommend(&input).next_delay_ms
        })
        .collect();
    let mut distinct = delays.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 1, "{delays:?}");
}

#[test]
fn a_retry_after_longer_than_the_delay_is_waited_and_capped_by_the_policys_max_delay() {
    let mut input = common::throttling();
    let r = recommend(&input);
    assert_eq!(r.next_delay_ms, Some(45_000));
    assert!(r.reason.contains("Retry-After of 45s"), "{}", r.reason);
    input.failures.retry_after_secs = Some(3_600);
    assert_eq!(recommend(&input).next_delay_ms, Some(300_000));
}

#[test]
fn an_open_breaker_holds_a_retryable_failure() {
    let r = recommend(&common::vendor_outage());
    assert_eq!(r.action, ActionKind::Hold);
    assert_eq!(r.policy.as_deref(), Some("payment_timeout"));
    assert!(
        r.reason.contains("stripe's breaker is OPEN"),
        "{}",
        r.reason
    );
}

#[test]
fn a_half_open_breaker_lets_a_retry_through() {
    let mut input = common::vendor_outage();
    input.at = common::t(1);
    if let Some(v) = input.vendor.as_mut() {
        v.breaker = Some(BreakerFacts {
            state: "HALF_OPEN".to_owned(),
            failure_rate: 0.5,
            opened_at: Some(common::t(0)),
        });
    }
    assert_eq!(recommend(&input).action, ActionKind::Retry);
}

#[test]
fn escalations_say_why() {
    let mut critical = common::vendor_outage();
    critical.rule.severity = Severity::Critical;
    let mut no_policy = common::noise_blip();
    no_policy.policy = None;
    let mut limit = common::noise_blip();
    limit.at = common::t(60);
    let rows = [
        (critical, "severity critical"),
        (common::bad_credentials(), "not retryable (auth)"),
        (common::data_problem(), "not retryable (permanent)"),
        (no_policy, "no retry policy"),
        (limit, "limit reached"),
    ];
    for (input, why) in rows {
        let r = recommend(&input);
        assert_eq!(r.action, ActionKind::Escalate, "{why}");
        assert!(r.reason.contains(why), "{why}: {}", r.reason);
        assert_eq!(r.next_delay_ms, None);
    }
}

#[test]
fn unexplained_low_severity_failures_that_cannot_be_retried_need_nothing() {
    let r = recommend(&common::noise_unexplained());
    assert_eq!(r.action, ActionKind::None);
    assert!(r.confidence > 0.0 && r.confidence < 1.0);
}
