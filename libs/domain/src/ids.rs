//! Stable identifiers.
//!
//! An event's id is derived from its tenant and idempotency key, so the same
//! event gets the same id whichever way it arrives (HTTP or NATS) and however
//! often it is redelivered; that id is also its `Nats-Msg-Id`.

use uuid::Uuid;

/// The UUID namespace of AWFDRS event ids.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c2e_9b4d_4f0a_8e21_5d7c_0b9a_e413);

/// The id of the event with `idempotency_key` in `tenant`, stable for ever.
pub fn event_id(tenant: &str, idempotency_key: &str) -> Uuid {
    let mut name = Vec::with_capacity(tenant.len() + idempotency_key.len() + 1);
    name.extend_from_slice(tenant.as_bytes());
    name.push(0x1f);
    name.extend_from_slice(idempotency_key.as_bytes());
    Uuid::new_v5(&EVENT_NAMESPACE, &name)
}

/// A new API key: `awf_` followed by 64 hex characters of randomness.
///
/// Two v4 UUIDs give 244 random bits, well past what brute force reaches, so
/// a plain SHA-256 of the key is a safe stored form.
pub fn new_api_key() -> String {
    format!("awf_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_is_stable_and_separates_tenants() {
        assert_eq!(event_id("acme", "k1"), event_id("acme", "k1"));
        assert_ne!(event_id("acme", "k1"), event_id("acme", "k2"));
        assert_ne!(event_id("acme", "k1"), event_id("acm", "ek1"));
    }

    #[test]
    fn api_keys_are_long_and_distinct() {
        let a = new_api_key();
        assert_eq!(a.len(), 4 + 64);
        assert_ne!(a, new_api_key());
    }
}
