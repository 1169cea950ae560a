//! When an outbound delivery (a callback, a notification) is tried again: a pure function of the try
//! number and the receiver's `Retry-After`, so the schedule can be tested
//! and explained without a clock or a network.
//!
//! The delay doubles from one second, capped at five minutes, with
//! deterministic "equal" jitter (half the delay, plus a draw from the other
//! half seeded by the delivery's message id): never zero, never more than
//! the cap. A `Retry-After` (seconds or an HTTP date) is a floor, itself
//! capped at an hour so a receiver cannot park a delivery for ever.

use std::time::Duration;

use awfdrs_safety::retry::{base_delay, delay, jitter_seed};
use awfdrs_safety::{BackoffKind, RetryPolicy};
use chrono::{DateTime, Utc};

/// The first delay, before jitter.
const INITIAL: Duration = Duration::from_secs(1);
/// The longest delay backoff alone makes.
const MAX_DELAY: Duration = Duration::from_secs(5 * 60);
/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

fn policy(kind: BackoffKind, initial: Duration, max: Duration, jitter: bool) -> RetryPolicy {
    RetryPolicy {
        kind,
        initial_delay: initial,
        multiplier: Some(2.0),
        increment: None,
        max_delay: max,
        max_attempts: u32::MAX,
        max_elapsed: None,
        jitter,
    }
}

/// The delay after try `tries` (1 for the first) of the delivery `msg_id`,
/// at least `retry_after` (capped at [`MAX_RETRY_AFTER`]).
#[must_use]
pub fn next_delay(tries: u32, msg_id: &str, retry_after: Option<Duration>) -> Duration {
    let base = base_delay(
        &policy(BackoffKind::Exponential, INITIAL, MAX_DELAY, false),
        tries,
    );
    let half = base / 2;
    // A fixed policy of `half` with full jitter draws uniformly from [0, half].
    let drawn = delay(
        &policy(BackoffKind::Fixed, half, half, true),
        1,
        Duration::ZERO,
        jitter_seed(msg_id, tries),
    )
    .unwrap_or(half);
    let backoff = half + drawn;
    backoff.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
}

/// A `Retry-After` header's value as a delay from `now`: delta seconds or
/// an HTTP date (a date in the past is no delay). `None` when it is
/// neither.
#[must_use]
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or_default()
            .min(MAX_RETRY_AFTER),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_and_stop_at_the_cap() {
        for tries in 1..=20u32 {
            let d = next_delay(tries, "retry:a:1", None);
            let base = INITIAL
                .saturating_mul(2u32.saturating_pow(tries - 1))
                .min(MAX_DELAY);
            assert!(d >= base / 2 && d <= base, "try {tries}: {d:?} of {base:?}");
        }
    }

    #[test]
    fn the_same_delivery_and_try_get_the_same_delay() {
        assert_eq!(
            next_delay(3, "retry:a:1", None),
            next_delay(3, "retry:a:1", None)
        );
        let spread: std::collections::BTreeSet<Duration> = (0..50)
            .map(|i| next_delay(3, &format!("retry:{i}:1"), None))
            .collect();
        assert!(spread.len() > 10, "jitter spreads deliveries: {spread:?}");
    }

    #[test]
    fn retry_after_is_a_floor_and_is_capped() {
        assert_eq!(
            next_delay(1, "m", Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert!(next_delay(10, "m", Some(Duration::from_secs(2))) >= Duration::from_secs(128));
        assert_eq!(
            next_delay(1, "m", Some(Duration::from_secs(86_400))),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Tue, 01 Dec 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Tue, 01 Dec 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("99999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }
}
