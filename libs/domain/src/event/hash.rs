//! The body hash: SHA-256 of an event body in canonical form, the identity
//! the gateway and the detector use to tell a replay from a conflicting
//! reuse of an idempotency key.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// SHA-256 of an event body in canonical form (object keys sorted), so the
/// same event sent twice with its keys in another order is the same body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyHash(pub [u8; 32]);

impl BodyHash {
    /// The hash of a JSON value in canonical form.
    pub fn of(value: &Value) -> Self {
        Self::of_canonical(&canonical_bytes(value))
    }

    /// The hash of bytes already in canonical form (see [`canonical_bytes`]).
    pub fn of_canonical(canonical: &[u8]) -> Self {
        Self(Sha256::digest(canonical).into())
    }

    /// The hash as a hex string.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

/// A JSON value in canonical form: compact, object keys sorted.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    // serde_json's map is ordered by key (no `preserve_order`), so
    // serializing a parsed value is canonical; serializing a `Value`
    // cannot fail (its keys are strings).
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":2}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"b":2,"a":1}"#).expect("json");
        assert_eq!(BodyHash::of(&a), BodyHash::of(&b));
    }
}
