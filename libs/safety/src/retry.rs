//! Retry delays: exponential, linear or fixed growth, capped, with
//! deterministic **full jitter**.
//!
//! Full jitter (a delay drawn uniformly from `[0, capped delay]`) spreads a
//! wave of simultaneous failures over the whole interval instead of half of
//! it, which is what keeps a recovering vendor from being hit by a
//! synchronised retry storm. The draw comes from a seed, not a random
//! generator, so the same action and attempt always get the same delay:
//! a redelivered message schedules the same retry at the same time, and a
//! decision can be explained after the fact. Derive the seed with
//! [`jitter_seed`].

use std::time::Duration;

use crate::hash::{mix, stable_hash};
use crate::{BackoffKind, RetryPolicy};

/// A stable seed for the jitter of retry `attempt` of the action `key`
/// (for example the action id).
#[must_use]
pub fn jitter_seed(key: &str, attempt: u32) -> u64 {
    mix(stable_hash(key.as_bytes()) ^ u64::from(attempt))
}

/// The delay before retry `attempt` (1 for the first retry) without jitter:
/// the policy's growth, capped at `max_delay`. Attempt 0 is read as 1.
#[must_use]
pub fn base_delay(policy: &RetryPolicy, attempt: u32) -> Duration {
    let steps = attempt.max(1) - 1;
    let raw = match policy.kind {
        BackoffKind::Fixed => Some(policy.initial_delay),
        BackoffKind::Linear => policy
            .increment()
            .checked_mul(steps)
            .and_then(|grow| policy.initial_delay.checked_add(grow)),
        BackoffKind::Exponential => {
            let exponent = i32::try_from(steps).unwrap_or(i32::MAX);
            let secs = policy.initial_delay.as_secs_f64() * policy.multiplier().powi(exponent);
            Duration::try_from_secs_f64(secs).ok()
        }
    };
    // Overflow means "more than any cap".
    raw.map_or(policy.max_delay, |d| d.min(policy.max_delay))
}

/// The delay before retry `attempt` (1 for the first retry), or `None` when
/// the policy allows no such retry: `attempt` is past `max_attempts`, or
/// `elapsed` (time since the first failure) plus the delay would pass
/// `max_elapsed`.
///
/// With jitter on, the delay is drawn uniformly from `[0, base_delay]` using
/// `seed` (see [`jitter_seed`]); it never exceeds `max_delay`.
#[must_use]
pub fn delay(policy: &RetryPolicy, attempt: u32, elapsed: Duration, seed: u64) -> Option<Duration> {
    if attempt.max(1) > policy.max_attempts {
        return None;
    }
    let base = base_delay(policy, attempt);
    let d = if policy.jitter {
        full_jitter(base, seed)
    } else {
        base
    };
    match policy.max_elapsed {
        Some(limit) if elapsed.saturating_add(d) > limit => None,
        _ => Some(d),
    }
}

/// A duration drawn uniformly from `[0, d]` by `seed`.
fn full_jitter(d: Duration, seed: u64) -> Duration {
    let span = u128::from(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let draw = (u128::from(mix(seed)) * (span + 1)) >> 64;
    Duration::from_nanos(u64::try_from(draw).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn policy(kind: BackoffKind) -> RetryPolicy {
        RetryPolicy {
            kind,
            initial_delay: Duration::from_secs(1),
            multiplier: None,
            increment: None,
            max_delay: Duration::from_secs(60),
            max_attempts: 10,
            max_elapsed: None,
            jitter: false,
        }
    }

    #[test]
    fn exponential_delays_double_by_default_and_stop_at_max_delay() {
        let p = policy(BackoffKind::Exponential);
        let delays: Vec<u64> = (1..=8).map(|a| base_delay(&p, a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn linear_delays_grow_by_the_increment() {
        let p = RetryPolicy {
            increment: Some(Duration::from_secs(5)),
            ..policy(BackoffKind::Linear)
        };
        let delays: Vec<u64> = (1..=4).map(|a| base_delay(&p, a).as_secs()).collect();
        assert_eq!(delays, [1, 6, 11, 16]);
    }

    #[test]
    fn fixed_delays_stay_the_same() {
        let p = policy(BackoffKind::Fixed);
        assert!((1..=10).all(|a| base_delay(&p, a) == Duration::from_secs(1)));
    }

    #[test]
    fn no_retry_is_offered_past_max_attempts() {
        let p = policy(BackoffKind::Fixed);
        assert!(delay(&p, 10, Duration::ZERO, 0).is_some());
        assert_eq!(delay(&p, 11, Duration::ZERO, 0), None);
    }

    #[test]
    fn no_retry_is_offered_when_it_would_pass_max_elapsed() {
        let p = RetryPolicy {
            max_elapsed: Some(Duration::from_secs(10)),
            ..policy(BackoffKind::Fixed)
        };
        assert_eq!(
            delay(&p, 2, Duration::from_secs(9), 0),
            Some(Duration::from_secs(1))
        );
        assert_eq!(delay(&p, 2, Duration::from_millis(9_001), 0), None);
    }

    #[test]
    fn jitter_is_reproducible_for_the_same_seed() {
        let p = RetryPolicy {
            jitter: true,
            ..policy(BackoffKind::Exponential)
        };
        let seed = jitter_seed("action-42", 3);
        assert_eq!(
            delay(&p, 3, Duration::ZERO, seed),
            delay(&p, 3, Duration::ZERO, seed)
        );
        assert_ne!(jitter_seed("action-42", 3), jitter_seed("action-42", 4));
    }

    #[test]
    fn jitter_spreads_a_thousand_simultaneous_first_retries_over_the_first_delay() {
        let p = RetryPolicy {
            initial_delay: Duration::from_secs(10),
            jitter: true,
            ..policy(BackoffKind::Exponential)
        };
        let mut per_second = [0u32; 11];
        for i in 0..1000 {
            let seed = jitter_seed(&format!("action-{i}"), 1);
            let d = delay(&p, 1, Duration::ZERO, seed).expect("first retry is allowed");
            per_second[usize::try_from(d.as_secs()).unwrap()] += 1;
        }
        let busiest = per_second.iter().max().copied().unwrap_or(0);
        assert!(
            busiest <= 200,
            "busiest second holds {busiest} of 1000: {per_second:?}"
        );
    }

    fn any_policy() -> impl Strategy<Value = RetryPolicy> {
        (
            prop_oneof![
                Just(BackoffKind::Exponential),
                Just(BackoffKind::Linear),
                Just(BackoffKind::Fixed)
            ],
            1u64..60_000,
            1.0f64..10.0,
            1u64..60_000,
            0u64..3_600_000,
            1u32..50,
            prop::option::of(1u64..7_200_000),
            any::<bool>(),
        )
            .prop_map(
                |(kind, initial, mult, inc, extra, attempts, elapsed, jitter)| RetryPolicy {
                    kind,
                    initial_delay: Duration::from_millis(initial),
                    multiplier: (kind == BackoffKind::Exponential).then_some(mult),
                    increment: (kind == BackoffKind::Linear).then(|| Duration::from_millis(inc)),
                    max_delay: Duration::from_millis(initial + extra),
                    max_attempts: attempts,
                    max_elapsed: elapsed.map(Duration::from_millis),
                    jitter,
                },
            )
    }

    proptest! {
        #[test]
        fn delays_never_exceed_max_delay_nor_max_elapsed(
            p in any_policy(),
            attempt in 0u32..200,
            elapsed_ms in 0u64..10_000_000,
            seed in any::<u64>(),
        ) {
            let elapsed = Duration::from_millis(elapsed_ms);
            if let Some(d) = delay(&p, attempt, elapsed, seed) {
                prop_assert!(d <= p.max_delay);
                prop_assert!(attempt.max(1) <= p.max_attempts);
                if let Some(limit) = p.max_elapsed {
                    prop_assert!(elapsed + d <= limit);
                }
            } else {
                let past_attempts = attempt.max(1) > p.max_attempts;
                // A jittered delay is at most the base delay, so a refusal
                // for time means even the base delay would not fit.
                let past_elapsed = p.max_elapsed.is_some_and(|l| elapsed + base_delay(&p, attempt) > l);
                prop_assert!(past_attempts || past_elapsed);
            }
        }

        #[test]
        fn base_delays_never_shrink_as_attempts_grow(p in any_policy(), attempt in 1u32..100) {
            prop_assert!(base_delay(&p, attempt) <= base_delay(&p, attempt + 1));
        }
    }
}
