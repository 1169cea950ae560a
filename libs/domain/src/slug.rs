//! Slugs: the names of tenants, workflows, vendors and error codes.
//!
//! A slug is always safe as a NATS subject token and as a label value.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest slug accepted (the first character plus 62 more).
pub const MAX_SLUG_LEN: usize = 63;

/// Whether `s` matches `[a-z0-9][a-z0-9_-]{0,62}`.
pub fn is_slug(s: &str) -> bool {
    let bytes = s.as_bytes();
    match bytes.first() {
        Some(first) if first.is_ascii_lowercase() || first.is_ascii_digit() => {}
        _ => return false,
    }
    bytes.len() <= MAX_SLUG_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// A validated slug.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

/// The reason a string is not a slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlugError(pub String);

impl fmt::Display for SlugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a slug: expected [a-z0-9][a-z0-9_-]{{0,62}}",
            self.0
        )
    }
}

impl std::error::Error for SlugError {}

impl Slug {
    /// Validates `s` as a slug.
    ///
    /// # Errors
    /// When `s` does not match `[a-z0-9][a-z0-9_-]{0,62}`.
    pub fn new(s: impl Into<String>) -> Result<Self, SlugError> {
        let s = s.into();
        if is_slug(&s) {
            Ok(Self(s))
        } else {
            Err(SlugError(s))
        }
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Slug {
    type Error = SlugError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<Slug> for String {
    fn from(s: Slug) -> Self {
        s.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Slug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_start_with_a_letter_or_digit_and_stay_short() {
        assert!(is_slug("checkout"));
        assert!(is_slug("0-payouts_v2"));
        assert!(!is_slug(""));
        assert!(!is_slug("-x"));
        assert!(!is_slug("Checkout"));
        assert!(!is_slug("a.b"));
        assert!(!is_slug("a*"));
        assert!(is_slug(&"a".repeat(63)));
        assert!(!is_slug(&"a".repeat(64)));
    }
}
