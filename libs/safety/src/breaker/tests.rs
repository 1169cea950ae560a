use std::time::Duration;

use super::*;

const T0: u64 = 1_700_000_000_000;

pub(super) fn at(ms: u64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + ms)
}

pub(super) fn settings() -> BreakerSettings {
    BreakerSettings {
        failure_rate_threshold: 0.5,
        window: Duration::from_secs(10),
        bucket: Duration::from_secs(1),
        minimum_calls: 4,
        open_duration: Duration::from_secs(5),
        half_open_probes: 2,
        probe_timeout: Duration::from_secs(3),
        successes_to_close: 2,
        min_distinct_sources: 2,
    }
}

fn outcomes(successes: u64, failures: u64, sources: &[&str]) -> Outcomes {
    Outcomes {
        successes,
        failures,
        sources: sources.iter().map(|s| source_id(s)).collect(),
    }
}

/// A breaker opened at `at(0)` by failures from two tenants.
fn opened() -> Breaker {
    let (b, t) = record(
        &Breaker::new(at(0)),
        &settings(),
        at(0),
        &outcomes(0, 10, &["a", "b"]),
    );
    assert_eq!(t.map(|t| t.to), Some(BreakerState::Open));
    b
}

/// A breaker half-opened at `at(5_000)`.
fn half_opened() -> Breaker {
    let (b, t) = tick(&opened(), &settings(), at(5_000));
    assert_eq!(t.map(|t| t.to), Some(BreakerState::HalfOpen));
    b
}

#[test]
fn breaker_opens_after_failure_rate_reaches_threshold() {
    let s = settings();
    let (b, t) = record(&Breaker::new(at(0)), &s, at(0), &outcomes(2, 1, &["a"]));
    assert_eq!((b.state(), t), (BreakerState::Closed, None));
    let (b, t) = record(&b, &s, at(500), &outcomes(1, 4, &["b", "c"]));
    let t = t.expect("the breaker opens");
    assert_eq!(
        (t.from, t.to, t.at),
        (BreakerState::Closed, BreakerState::Open, at(500))
    );
    assert_eq!(
        t.reason,
        "failure rate 0.62 >= 0.50 over 10s with 8 calls from 3 sources"
    );
    assert_eq!(b.opened_at(), Some(at(500)));
    assert_eq!(b.open_until(), Some(at(5_500)));
}

#[test]
fn breaker_stays_closed_below_minimum_calls() {
    let (b, t) = record(
        &Breaker::new(at(0)),
        &settings(),
        at(0),
        &outcomes(0, 3, &["a", "b"]),
    );
    assert_eq!((b.state(), t), (BreakerState::Closed, None));
    assert!((b.failure_rate(at(0), &settings()) - 1.0).abs() < f64::EPSILON);
}

#[test]
fn a_storm_of_one_tenants_failures_does_not_open_the_breaker() {
    let s = settings();
    let mut b = Breaker::new(at(0));
    for i in 0..50 {
        let (next, t) = record(&b, &s, at(i * 100), &outcomes(0, 100, &["noisy-tenant"]));
        assert_eq!(t, None);
        b = next;
    }
    let (b, t) = record(&b, &s, at(5_000), &outcomes(0, 1, &["other-tenant"]));
    assert_eq!(t.map(|t| t.to), Some(BreakerState::Open));
    assert_eq!(b.window_stats(at(5_000), &s).distinct_sources, 2);
}

#[test]
fn failures_older_than_the_window_no_longer_count() {
    let s = settings();
    let (b, _) = record(
        &Breaker::new(at(0)),
        &s,
        at(0),
        &outcomes(0, 3, &["a", "b"]),
    );
    let (b, t) = record(&b, &s, at(10_000), &outcomes(2, 1, &["a"]));
    assert_eq!(t, None, "the old failures left the window");
    assert_eq!(b.buckets().len(), 1);
    assert!((b.failure_rate(at(10_000), &s) - 1.0 / 3.0).abs() < 1e-9);
}

#[test]
fn sources_per_bucket_are_bounded() {
    let many: Vec<String> = (0..100).map(|i| format!("tenant-{i}")).collect();
    let names: Vec<&str> = many.iter().map(String::as_str).collect();
    let (b, _) = record(
        &Breaker::new(at(0)),
        &settings(),
        at(0),
        &outcomes(100, 0, &names),
    );
    assert_eq!(b.buckets()[0].sources.len(), MAX_SOURCES_PER_BUCKET);
}

#[test]
fn open_breaker_half_opens_once_open_duration_has_passed() {
    let b = opened();
    assert_eq!(tick(&b, &settings(), at(4_999)).1, None);
    let (b, t) = tick(&b, &settings(), at(5_000));
    let t = t.expect("half-opens");
    assert_eq!((t.from, t.to), (BreakerState::Open, BreakerState::HalfOpen));
    assert_eq!(t.reason, "open for 5s, admitting up to 2 probes");
    assert_eq!(b.half_opened_at(), Some(at(5_000)));
}

#[test]
fn half_open_admits_only_the_configured_probes_and_regrants_to_the_same_holder() {
    let s = settings();
    let b = half_opened();
    let (b, g1, _) = try_acquire_probe(&b, &s, at(5_000), "retry-1");
    let (b, again, _) = try_acquire_probe(&b, &s, at(5_100), "retry-1");
    assert_eq!(g1, again);
    let (b, g2, _) = try_acquire_probe(&b, &s, at(5_100), "retry-2");
    let (b, g3, _) = try_acquire_probe(&b, &s, at(5_100), "retry-3");
    assert!(g1.is_some() && g2.is_some() && g3.is_none());
    assert_eq!(b.probes().len(), 2);
    assert_eq!(
        check(&b, &s, at(5_100)),
        Admission::Deny {
            until: Some(at(8_000))
        }
    );
}

#[test]
fn probe_successes_close_the_breaker_and_clear_the_window() {
    let s = settings();
    let (b, _, _) = try_acquire_probe(&half_opened(), &s, at(5_000), "p1");
    let (b, _, _) = try_acquire_probe(&b, &s, at(5_000), "p2");
    let (b, t) = report_probe(&b, &s, at(5_500), "p1", ProbeResult::Success);
    assert_eq!((b.state(), t), (BreakerState::HalfOpen, None));
    let (b, t) = report_probe(&b, &s, at(5_600), "p2", ProbeResult::Success);
    let t = t.expect("closes");
    assert_eq!(
        (t.from, t.to, t.reason.as_str()),
        (
            BreakerState::HalfOpen,
            BreakerState::Closed,
            "2 probes succeeded"
        )
    );
    assert!(b.buckets().is_empty());
    assert_eq!(check(&b, &s, at(5_600)), Admission::Allow);
}

#[test]
fn a_probe_failure_reopens_the_breaker() {
    let s = settings();
    let (b, _, _) = try_acquire_probe(&half_opened(), &s, at(5_000), "p1");
    let (b, t) = report_probe(&b, &s, at(6_000), "p1", ProbeResult::Failure);
    let t = t.expect("reopens");
    assert_eq!(
        (t.from, t.to, t.reason.as_str()),
        (
            BreakerState::HalfOpen,
            BreakerState::Open,
            "probe by p1 failed"
        )
    );
    assert_eq!(b.open_until(), Some(at(11_000)));
}

#[test]
fn a_probe_that_never_reports_reopens_the_breaker_after_probe_timeout() {
    let s = settings();
    let (b, _, _) = try_acquire_probe(&half_opened(), &s, at(5_000), "lost");
    assert_eq!(tick(&b, &s, at(7_999)).1, None);
    let (b, t) = tick(&b, &s, at(8_000));
    assert_eq!(
        t.map(|t| t.reason),
        Some("probe by lost did not report within 3s".to_owned())
    );
    assert_eq!(b.state(), BreakerState::Open);
    // Its late report changes nothing.
    let (late, t) = report_probe(&b, &s, at(8_100), "lost", ProbeResult::Success);
    assert_eq!((late.state(), t), (BreakerState::Open, None));
}

#[test]
fn check_reads_the_ticked_view_without_changing_the_value() {
    let s = settings();
    let b = opened();
    assert_eq!(
        check(&b, &s, at(1_000)),
        Admission::Deny {
            until: Some(at(5_000))
        }
    );
    assert_eq!(check(&b, &s, at(5_000)), Admission::Probe);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn a_forced_open_breaker_stays_open_until_reset() {
    let s = settings();
    let (b, t) = force_open(&Breaker::new(at(0)), at(0), "vendor maintenance");
    assert_eq!(
        t.map(|t| t.reason),
        Some("forced open: vendor maintenance".to_owned())
    );
    assert_eq!(tick(&b, &s, at(1_000_000)).0.state(), BreakerState::Open);
    assert_eq!(
        check(&b, &s, at(1_000_000)),
        Admission::Deny { until: None }
    );
    let (b, t) = reset(&b, at(1_000_000));
    assert_eq!(
        t.map(|t| (t.from, t.to)),
        Some((BreakerState::Open, BreakerState::Closed))
    );
    assert_eq!(b.forced_reason(), None);
}

#[test]
fn reset_clears_the_window_of_a_closed_breaker_without_a_transition() {
    let (b, _) = record(
        &Breaker::new(at(0)),
        &settings(),
        at(0),
        &outcomes(5, 1, &["a"]),
    );
    let (b, t) = reset(&b, at(1));
    assert_eq!(t, None);
    assert!(b.buckets().is_empty());
}

#[test]
fn the_stored_value_round_trips_through_json() {
    let s = settings();
    let (b, _, _) = try_acquire_probe(&half_opened(), &s, at(5_000), "p1");
    let json = serde_json::to_string(&b).unwrap();
    assert!(json.contains(r#""state":"HALF_OPEN""#), "{json}");
    let back: Breaker = serde_json::from_str(&json).unwrap();
    assert_eq!(back, b);
    assert_eq!(back.check_invariants(&s), Ok(()));
}

#[test]
fn a_half_open_breaker_no_one_probes_stays_half_open() {
    let (b, t) = tick(&half_opened(), &settings(), at(1_000_000));
    assert_eq!((b.state(), t), (BreakerState::HalfOpen, None));
    assert_eq!(check(&b, &settings(), at(1_000_000)), Admission::Probe);
}

#[test]
fn every_breaker_state_reads_back_from_its_name() {
    for s in [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ] {
        assert_eq!(s.as_str().parse::<BreakerState>(), Ok(s));
    }
    assert!("half_open".parse::<BreakerState>().is_err());
}
