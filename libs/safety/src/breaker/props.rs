//! Property tests: random operation sequences against the breaker's invariants.

use std::time::Duration;

use proptest::prelude::*;

use super::tests::{at, settings};
use super::*;

#[derive(Debug, Clone)]
enum Op {
    Wait(u64),
    Record(u64, u64, Vec<u8>),
    Acquire(u8),
    Report(u8, bool),
    ForceOpen,
    Reset,
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..4_000).prop_map(Op::Wait),
        4 => (0u64..20, 0u64..20, prop::collection::vec(0u8..5, 0..4)).prop_map(|(s, f, src)| Op::Record(s, f, src)),
        3 => (0u8..4).prop_map(Op::Acquire),
        3 => (0u8..4, any::<bool>()).prop_map(|(h, ok)| Op::Report(h, ok)),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Reset),
        2 => Just(Op::Tick),
    ]
}

/// Applies one op at `now`, checking that any transition matches the change.
fn apply(
    b: &Breaker,
    s: &BreakerSettings,
    now: Timestamp,
    op: &Op,
) -> Result<Breaker, TestCaseError> {
    let (next, t) = match op {
        Op::Wait(_) => return Ok(b.clone()),
        Op::Record(ok, failed, src) => {
            let sources = src
                .iter()
                .map(|i| source_id(&format!("tenant-{i}")))
                .collect();
            record(
                b,
                s,
                now,
                &Outcomes {
                    successes: *ok,
                    failures: *failed,
                    sources,
                },
            )
        }
        Op::Acquire(h) => {
            let (next, grant, t) = try_acquire_probe(b, s, now, &format!("h{h}"));
            prop_assert_eq!(
                grant.is_some(),
                next.probes().iter().any(|p| p.holder == format!("h{h}"))
            );
            (next, t)
        }
        Op::Report(h, ok) => {
            let result = if *ok {
                ProbeResult::Success
            } else {
                ProbeResult::Failure
            };
            report_probe(b, s, now, &format!("h{h}"), result)
        }
        Op::ForceOpen => force_open(b, now, "test"),
        Op::Reset => reset(b, now),
        Op::Tick => tick(b, s, now),
    };
    if let Some(t) = &t {
        prop_assert_eq!(t.to, next.state());
        prop_assert_ne!(t.from, t.to);
        prop_assert_eq!(t.at, now);
    }
    Ok(next)
}

proptest! {
    #[test]
    fn random_operations_never_leave_the_breaker_in_an_impossible_state(ops in prop::collection::vec(op(), 1..80)) {
        let s = settings();
        let mut now = 0;
        let mut b = Breaker::new(at(now));
        for op in &ops {
            if let Op::Wait(ms) = op {
                now += ms;
            }
            b = apply(&b, &s, at(now), op)?;
            prop_assert_eq!(b.check_invariants(&s), Ok(()), "after {:?}: {:?}", op, b);
            let json = serde_json::to_string(&b).unwrap();
            prop_assert_eq!(&serde_json::from_str::<Breaker>(&json).unwrap(), &b);
        }
    }

    #[test]
    fn half_open_always_ends_once_probed_and_time_passes(ops in prop::collection::vec(op(), 0..60)) {
        let s = settings();
        let mut now = 0;
        let mut b = Breaker::new(at(now));
        for op in &ops {
            if let Op::Wait(ms) = op {
                now += ms;
            }
            b = apply(&b, &s, at(now), op)?;
        }
        // Past any open period: a half-open breaker, probed or not...
        now += duration_ms(s.open_duration) + duration_ms(s.probe_timeout) + 1;
        let (probed, _, _) = try_acquire_probe(&b, &s, at(now), "late-comer");
        // ...is closed or open again once every probe's deadline has passed.
        now += duration_ms(s.probe_timeout);
        let (end, _) = tick(&probed, &s, at(now));
        prop_assert_ne!(end.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn a_closed_breaker_opens_only_when_every_condition_holds(
        batches in prop::collection::vec((0u64..10, 0u64..10, prop::collection::vec(0u8..3, 0..3)), 1..30),
    ) {
        let s = settings();
        let mut b = Breaker::new(at(0));
        for (i, (ok, failed, src)) in batches.into_iter().enumerate() {
            let now = at(i as u64 * 300);
            let sources = src.iter().map(|i| source_id(&format!("tenant-{i}"))).collect();
            let (next, t) = record(&b, &s, now, &Outcomes { successes: ok, failures: failed, sources });
            if t.is_some() {
                let stats = next.window_stats(now, &s);
                prop_assert!(stats.calls >= u64::from(s.minimum_calls));
                prop_assert!(stats.failure_rate() >= s.failure_rate_threshold);
                prop_assert!(stats.distinct_sources >= s.min_distinct_sources as usize);
                break;
            }
            b = next;
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap()
}
