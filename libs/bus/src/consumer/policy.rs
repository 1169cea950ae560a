//! The loop's policies as pure functions: redelivery delays, what an
//! outcome does at a given delivery count, probe backoff, and whether a
//! payload fits a notification.

use std::time::Duration;

use super::{ConsumerSpec, Outcome};
use crate::headers;

/// First and longest pause between readiness probes while holding.
pub(super) const PROBE_MIN: Duration = Duration::from_millis(250);
pub(super) const PROBE_MAX: Duration = Duration::from_secs(5);
/// How long one readiness probe may take.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest reason or quoted value carried in a notification header;
/// the record keeps the whole text.
pub(super) const MAX_HEADER_VALUE: usize = 1024;
/// Room left under `max_payload` for the protocol line.
pub(super) const PAYLOAD_MARGIN: usize = 512;

/// The delay before redelivery after the `delivered`-th failed delivery:
/// `base · 2^(delivered-1)`, capped at `max`.
pub fn nak_delay(base: Duration, max: Duration, delivered: i64) -> Duration {
    let exp = u32::try_from(delivered.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    base.saturating_mul(2u32.saturating_pow(exp)).min(max)
}

/// What the loop does with a message, decided from its outcome alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    /// Nak, redelivered after the delay.
    Nak(Duration, String),
    /// Record, notify, terminate.
    DeadLetter(String),
    /// Keep, stop fetching, wait for the dependency.
    Hold(String),
}

/// The disposition of a message delivered `delivered` times whose handling
/// gave `outcome`.
pub fn disposition(outcome: Outcome, delivered: i64, spec: &ConsumerSpec) -> Disposition {
    match outcome {
        Outcome::Ack => Disposition::Ack,
        Outcome::Retry(reason) if delivered >= spec.settings.max_deliver => {
            Disposition::DeadLetter(format!("gave up after {delivered} deliveries: {reason}"))
        }
        Outcome::Retry(reason) => {
            Disposition::Nak(nak_delay(spec.nak_base, spec.nak_max, delivered), reason)
        }
        Outcome::Reject(reason) => Disposition::DeadLetter(reason),
        Outcome::Unavailable(reason) => Disposition::Hold(reason),
    }
}

/// The pause before the `attempt`-th readiness probe (0-based) while
/// holding: doubles from 250 ms up to 5 s.
pub fn probe_delay(attempt: u32) -> Duration {
    PROBE_MIN
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(PROBE_MAX)
}

/// How often held messages are marked in progress: well before `ack_wait`
/// runs out.
pub fn progress_every(ack_wait: Duration) -> Duration {
    (ack_wait / 3).clamp(Duration::from_millis(100), Duration::from_secs(10))
}

/// Whether a payload of `payload` bytes travels with headers of `headers`
/// bytes under the server's `max_payload`.
pub fn payload_fits(payload: usize, headers: usize, max_payload: usize) -> bool {
    payload
        .saturating_add(headers)
        .saturating_add(PAYLOAD_MARGIN)
        <= max_payload
}

/// The bytes headers take on the wire (`NATS/1.0`, `name: value` lines).
pub(super) fn wire_size(pairs: &[(&str, String)]) -> usize {
    let lines: usize = pairs
        .iter()
        .map(|(k, v)| k.len() + 2 + headers::encode(v).len() + 2)
        .sum();
    "NATS/1.0\r\n".len() + lines + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Stage;
    use crate::topology::ConsumerSettings;

    fn spec(max_deliver: i64) -> ConsumerSpec {
        ConsumerSpec {
            stage: Stage::Detector,
            settings: ConsumerSettings {
                max_deliver,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 100,
            },
            batch_size: 10,
            linger: Duration::from_millis(5),
            nak_base: Duration::from_millis(100),
            nak_max: Duration::from_secs(1),
            in_flight: 1,
        }
    }

    #[test]
    fn nak_delay_doubles_per_delivery_up_to_the_cap() {
        let (b, m) = (Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(nak_delay(b, m, 1), Duration::from_millis(100));
        assert_eq!(nak_delay(b, m, 2), Duration::from_millis(200));
        assert_eq!(nak_delay(b, m, 4), Duration::from_millis(800));
        assert_eq!(nak_delay(b, m, 5), m);
        assert_eq!(nak_delay(b, m, 1000), m);
    }

    #[test]
    fn retries_are_naked_until_max_deliver_then_dead_lettered() {
        let s = spec(3);
        assert_eq!(
            disposition(Outcome::Retry("busy".into()), 1, &s),
            Disposition::Nak(Duration::from_millis(100), "busy".into())
        );
        assert_eq!(
            disposition(Outcome::Retry("busy".into()), 3, &s),
            Disposition::DeadLetter("gave up after 3 deliveries: busy".into())
        );
        assert_eq!(disposition(Outcome::Ack, 3, &s), Disposition::Ack);
        assert_eq!(
            disposition(Outcome::Reject("bad".into()), 1, &s),
            Disposition::DeadLetter("bad".into())
        );
    }

    #[test]
    fn an_unavailable_dependency_holds_the_message_whatever_its_delivery_count() {
        let s = spec(3);
        for delivered in [1, 3, 100] {
            assert_eq!(
                disposition(Outcome::Unavailable("db down".into()), delivered, &s),
                Disposition::Hold("db down".into())
            );
        }
    }

    #[test]
    fn readiness_probes_back_off_to_five_seconds() {
        assert_eq!(probe_delay(0), Duration::from_millis(250));
        assert_eq!(probe_delay(1), Duration::from_millis(500));
        assert_eq!(probe_delay(4), Duration::from_secs(4));
        assert_eq!(probe_delay(5), Duration::from_secs(5));
        assert_eq!(probe_delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn held_messages_are_marked_in_progress_well_before_ack_wait() {
        assert_eq!(
            progress_every(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            progress_every(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert!(progress_every(Duration::from_secs(600)) < Duration::from_secs(600));
        assert_eq!(
            progress_every(Duration::from_millis(30)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn a_payload_travels_only_when_it_fits_under_max_payload() {
        let max = 1024 * 1024;
        assert!(payload_fits(1000, 300, max));
        assert!(!payload_fits(max, 300, max));
        assert!(!payload_fits(max - 300, 300, max));
        assert!(!payload_fits(usize::MAX, 1, max));
    }

    #[test]
    fn wire_size_counts_encoded_values() {
        let plain = wire_size(&[("A", "b".to_owned())]);
        let hostile = wire_size(&[("A", "\n".to_owned())]);
        assert_eq!(hostile, plain + 2);
    }
}
