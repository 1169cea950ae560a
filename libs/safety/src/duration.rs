//! Human-readable durations (`"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1h30m"`)
//! for settings files, with serde helpers.
//!
//! Units are `ms`, `s`, `m`, `h` and `d`; amounts are whole numbers; groups
//! may be combined largest first or in any order (`"1m30s"`). A bare number
//! is rejected, because `60` could mean seconds or milliseconds.

use std::fmt::Write as _;
use std::time::Duration;

/// Why a duration string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty or only whitespace.
    #[error("empty duration")]
    Empty,
    /// Something other than a digit stood where an amount was expected.
    #[error("invalid duration {0:?}: expected a whole number followed by a unit (ms, s, m, h, d)")]
    Invalid(String),
    /// An amount had no unit after it.
    #[error("invalid duration {0:?}: missing unit after the number (ms, s, m, h, d)")]
    MissingUnit(String),
    /// A unit was not one of `ms`, `s`, `m`, `h`, `d`.
    #[error("invalid duration {input:?}: unknown unit {unit:?} (expected ms, s, m, h, d)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit that was not recognised.
        unit: String,
    },
    /// The duration does not fit in a `Duration`.
    #[error("invalid duration {0:?}: too large")]
    Overflow(String),
}

/// Parses a human-readable duration such as `"500ms"`, `"30s"` or `"1h30m"`.
///
/// # Errors
/// Returns a [`DurationError`] naming the input when it is empty, has a
/// number without a unit, an unknown unit, or overflows.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::Invalid(input.to_owned()));
        }
        let amount: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::Overflow(input.to_owned()))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        if unit_len == 0 && rest.is_empty() {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        if unit_len == 0 {
            return Err(DurationError::Invalid(input.to_owned()));
        }
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let per_unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    input: input.to_owned(),
                    unit: unit.to_owned(),
                });
            }
        };
        let ms = amount
            .checked_mul(per_unit_ms)
            .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
    }
    Ok(total)
}

/// Formats a duration the way [`parse_duration`] reads it (`"1h30m"`,
/// `"500ms"`, `"0s"`); parts below a millisecond are dropped.
#[must_use]
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        let n = ms / size;
        if n > 0 {
            // Writing to a String cannot fail.
            let _ = write!(out, "{n}{unit}");
            ms %= size;
        }
    }
    out
}

/// `#[serde(with = "awfdrs_safety::duration::serde")]` for a `Duration` field
/// written as a human-readable string.
pub mod serde {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Serialises as a string such as `"30s"`.
    ///
    /// # Errors
    /// Only those of the serializer.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    /// Deserialises from a string such as `"30s"`.
    ///
    /// # Errors
    /// When the value is not a string or not a valid duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_str(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            super::parse_duration(v).map_err(E::custom)
        }
    }
}

/// `#[serde(with = "awfdrs_safety::duration::serde_opt")]` for an
/// `Option<Duration>` field; pair it with `#[serde(default)]`.
pub mod serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Human(#[serde(with = "super::serde")] Duration);

    /// Serialises `Some` as a string such as `"30s"` and `None` as null.
    ///
    /// # Errors
    /// Only those of the serializer.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serde::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Deserialises an optional human-readable duration.
    ///
    /// # Errors
    /// When the value is present but not a valid duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Human>::deserialize(d)?.map(|h| h.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_combinations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration(" 1h 30m "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5 s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_bare_numbers_unknown_units_and_garbage() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("60"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_duration("5 minutes"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("-5s"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("1.5s"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn formatting_round_trips_through_parsing() {
        for ms in [0, 1, 999, 1_000, 61_001, 3_600_000, 90_061_001] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{ms}ms");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
