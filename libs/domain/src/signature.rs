//! Failure signatures: what makes two failures the same incident.
//!
//! A signature is the tenant, the workflow and the normalised error code.
//! Vendor and step are recorded on the incident but are not part of it, so a
//! failure that moves between steps stays one incident.

use std::fmt;

use sha2::{Digest, Sha256};

/// Normalises an error code: trimmed, lowercase, every character outside
/// `[a-z0-9_-]` mapped to `_`, repeated `_` collapsed, at most 63 characters.
pub fn normalize_code(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    for c in code.trim().chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    let start = out.trim_start_matches(['_', '-']);
    let capped: String = start.chars().take(63).collect();
    let mut code = capped.trim_end_matches('_').to_owned();
    if code.is_empty() {
        code.push_str("unknown");
    }
    code
}

/// The signature of a failure: a hex SHA-256 over its grouping inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature(String);

impl Signature {
    /// The signature of a failure of `workflow` with `error_code` in `tenant`.
    /// The code is normalised first.
    pub fn compute(tenant: &str, workflow: &str, error_code: &str) -> Self {
        let mut h = Sha256::new();
        h.update(tenant.as_bytes());
        h.update([0x1f]);
        h.update(workflow.as_bytes());
        h.update([0x1f]);
        h.update(normalize_code(error_code).as_bytes());
        Self(hex::encode(h.finalize()))
    }

    /// The signature as stored (64 hex characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slug::is_slug;
    use proptest::prelude::*;

    #[test]
    fn codes_differing_only_in_case_and_punctuation_share_a_signature() {
        assert_eq!(normalize_code(" Payment.Timeout "), "payment_timeout");
        assert_eq!(
            Signature::compute("acme", "checkout", "PAYMENT_TIMEOUT"),
            Signature::compute("acme", "checkout", "payment timeout")
        );
    }

    #[test]
    fn tenant_and_workflow_separate_signatures() {
        let a = Signature::compute("acme", "checkout", "x");
        assert_ne!(a, Signature::compute("acme", "payouts", "x"));
        assert_ne!(a, Signature::compute("globex", "checkout", "x"));
    }

    proptest! {
        #[test]
        fn normalised_codes_are_slugs_and_normalising_is_idempotent(code in ".{0,100}") {
            let n = normalize_code(&code);
            prop_assert!(is_slug(&n), "{n:?} is not a slug");
            prop_assert_eq!(normalize_code(&n), n);
        }
    }
}
