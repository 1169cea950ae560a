//! The Generic Cell Rate Algorithm: a rate limit stored as one number.
//!
//! The stored value is the theoretical arrival time (TAT): when the limiter
//! would be empty again if requests kept coming at exactly the allowed rate.
//! It is kept in **nanoseconds** since the Unix epoch (a `u64`, good until
//! 2554) so high rates do not lose precision; `now` is a [`Timestamp`].
//!
//! With emission interval `T = 1 / rate` (rounded up to a whole nanosecond,
//! so rounding never admits more than the rate) a request at `now` is
//! allowed when `max(tat, now) + T − now ≤ burst × T`, and the new TAT is
//! `max(tat, now) + T`. Over any window of length `W` this admits at most
//! `rate × W + burst` requests.

use std::time::Duration;

use crate::{RateLimit, Timestamp};

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; store `new_tat` (nanoseconds since the epoch) with
    /// compare-and-set. If the store loses the race, check again.
    Allow {
        /// The TAT to store.
        new_tat: u64,
    },
    /// Not now; the earliest moment this request would be allowed is
    /// `now + retry_after`. `Duration::MAX` means never (a zero rate or burst).
    Deny {
        /// How long to wait.
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the request is allowed.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }
}

/// Decides one request against a stored TAT (`None` when nothing is stored yet).
#[must_use]
pub fn check(tat: Option<u64>, now: Timestamp, rate_per_sec: f64, burst: u32) -> Decision {
    let Some(interval) = emission_interval_nanos(rate_per_sec) else {
        return Decision::Deny {
            retry_after: Duration::MAX,
        };
    };
    if burst == 0 {
        return Decision::Deny {
            retry_after: Duration::MAX,
        };
    }
    let now = u128::from(now.as_unix_nanos());
    let base = tat.map_or(now, |t| u128::from(t).max(now));
    let new_tat = base + u128::from(interval);
    let tolerance = u128::from(interval) * u128::from(burst);
    if new_tat - now <= tolerance {
        Decision::Allow {
            new_tat: u64::try_from(new_tat).unwrap_or(u64::MAX),
        }
    } else {
        let wait = new_tat - tolerance - now;
        Decision::Deny {
            retry_after: Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX)),
        }
    }
}

impl RateLimit {
    /// [`check`] with this limit's rate and burst.
    #[must_use]
    pub fn check(&self, tat: Option<u64>, now: Timestamp) -> Decision {
        check(tat, now, self.retries_per_second, self.burst)
    }
}

/// Nanoseconds between requests at `rate` per second, rounded up; `None`
/// for a rate that admits nothing (zero, negative or not a number).
fn emission_interval_nanos(rate: f64) -> Option<u64> {
    // NaN fails this test too.
    if rate.is_nan() || rate <= 0.0 {
        return None;
    }
    let nanos = (1e9 / rate).ceil();
    // Float-to-int casts saturate; a rate so small the interval overflows
    // is treated as "one per 584 years", which is as good as none.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let nanos = nanos as u64;
    Some(nanos.max(1))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_unix_millis(T0 + ms)
    }

    /// Runs requests at the given millisecond offsets, returning which were allowed.
    fn run(offsets: &[u64], rate: f64, burst: u32) -> Vec<bool> {
        let mut tat = None;
        offsets
            .iter()
            .map(|&ms| match check(tat, at(ms), rate, burst) {
                Decision::Allow { new_tat } => {
                    tat = Some(new_tat);
                    true
                }
                Decision::Deny { .. } => false,
            })
            .collect()
    }

    #[test]
    fn a_quiet_limiter_admits_exactly_the_burst_at_once() {
        let allowed = run(&[0; 12], 1.0, 10);
        assert_eq!(allowed.iter().filter(|a| **a).count(), 10);
        assert!(!allowed[10] && !allowed[11]);
    }

    #[test]
    fn a_denied_request_is_told_when_it_would_pass() {
        let Decision::Allow { new_tat } = check(None, at(0), 2.0, 1) else {
            panic!("first request must pass");
        };
        let Decision::Deny { retry_after } = check(Some(new_tat), at(100), 2.0, 1) else {
            panic!("second request within the interval must be denied");
        };
        assert_eq!(retry_after, Duration::from_millis(400));
        assert!(check(Some(new_tat), at(500), 2.0, 1).is_allowed());
    }

    #[test]
    fn a_zero_rate_or_burst_never_admits() {
        assert_eq!(
            check(None, at(0), 0.0, 5),
            Decision::Deny {
                retry_after: Duration::MAX
            }
        );
        assert_eq!(
            check(None, at(0), f64::NAN, 5),
            Decision::Deny {
                retry_after: Duration::MAX
            }
        );
        assert_eq!(
            check(None, at(0), 5.0, 0),
            Decision::Deny {
                retry_after: Duration::MAX
            }
        );
    }

    #[test]
    fn a_high_rate_is_sustained_even_with_a_millisecond_clock() {
        // 5,000/s is 0.2 ms per request: a millisecond TAT would round it to
        // 1 ms and admit a fifth of the rate.
        let mut times = vec![];
        for ms in 1..=10 {
            times.extend(std::iter::repeat_n(ms, 20));
        }
        let allowed = run(&times, 5_000.0, 5);
        assert_eq!(allowed.iter().filter(|a| **a).count(), 50);
    }

    proptest! {
        #[test]
        fn gcra_never_admits_more_than_rate_times_window_plus_burst(
            gaps in prop::collection::vec(0u64..400, 1..200),
            rate in 0.5f64..200.0,
            burst in 1u32..20,
        ) {
            let offsets: Vec<u64> = gaps.iter().scan(0, |t, g| { *t += g; Some(*t) }).collect();
            let allowed = run(&offsets, rate, burst);
            let admitted: Vec<u64> = offsets.iter().zip(&allowed).filter(|(_, a)| **a).map(|(t, _)| *t).collect();
            for i in 0..admitted.len() {
                for j in i..admitted.len() {
                    let window_secs = (admitted[j] - admitted[i]) as f64 / 1000.0;
                    let count = (j - i + 1) as f64;
                    prop_assert!(
                        count <= rate * window_secs + f64::from(burst) + 1e-9,
                        "{count} admitted in {window_secs}s at rate {rate} burst {burst}"
                    );
                }
            }
        }

        #[test]
        fn gcra_admits_the_sustained_rate_when_requests_are_spaced_by_the_interval(
            rate in 0.5f64..100.0,
            burst in 1u32..10,
        ) {
            let step = (1000.0 / rate).ceil() as u64 + 1;
            let offsets: Vec<u64> = (0..50).map(|i| i * step).collect();
            prop_assert!(run(&offsets, rate, burst).iter().all(|a| *a));
        }
    }
}
