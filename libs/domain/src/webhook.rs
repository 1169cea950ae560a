//! Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`): HMAC-SHA256 over `id.timestamp.body` with the
//! tenant's secret, within a five-minute tolerance.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signature's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// A new secret in the Standard Webhooks format (`whsec_` + base64 of 32
/// random bytes).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("whsec_{}", STANDARD.encode(bytes))
}

fn key(secret: &str) -> Result<Vec<u8>, &'static str> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| "the tenant's webhook secret is not valid base64")
}

/// The `v1,<base64>` signature of a message.
///
/// # Errors
/// When the secret is not valid base64.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, &'static str> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)?).map_err(|_| "bad key")?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The signature's timestamp, when it is within the tolerance of `now`
/// (Unix seconds). No value, however large, overflows the arithmetic.
///
/// # Errors
/// When it is not a number or too far from now.
pub fn check_timestamp(timestamp: &str, now: i64) -> Result<i64, &'static str> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| "webhook-timestamp is not a Unix time in seconds")?;
    match now.checked_sub(ts) {
        Some(d) if d.unsigned_abs() <= TOLERANCE_SECS.unsigned_abs() => Ok(ts),
        _ => Err("webhook-timestamp is more than 5 minutes away from now"),
    }
}

/// Verifies a signed message at time `now` (Unix seconds).
///
/// # Errors
/// Why it is not acceptable.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    signatures: &str,
    now: i64,
) -> Result<(), &'static str> {
    let ts = check_timestamp(timestamp, now)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)?).map_err(|_| "bad key")?;
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    // Several space-separated signatures may be sent during a secret
    // rotation; each is compared in constant time.
    let ok = signatures
        .split_whitespace()
        .filter_map(|sig| sig.strip_prefix("v1,"))
        .filter_map(|b| STANDARD.decode(b).ok())
        .any(|given| mac.clone().verify_slice(&given).is_ok());
    if ok {
        Ok(())
    } else {
        Err("no webhook-signature matches")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_made_with_the_secret_verifies_within_the_tolerance() {
        let secret = new_secret();
        let sig = sign(&secret, "msg_1", 1_000_000, b"{}").expect("sign");
        assert!(verify(&secret, "msg_1", "1000000", b"{}", &sig, 1_000_100).is_ok());
        assert!(
            verify(
                &secret,
                "msg_1",
                "1000000",
                b"{}",
                &format!("v1,AAAA {sig}"),
                1_000_000
            )
            .is_ok()
        );
    }

    #[test]
    fn a_tampered_body_an_old_timestamp_or_another_secret_is_refused() {
        let secret = new_secret();
        let sig = sign(&secret, "msg_1", 1_000_000, b"{}").expect("sign");
        assert!(verify(&secret, "msg_1", "1000000", b"{ }", &sig, 1_000_000).is_err());
        assert!(verify(&secret, "msg_1", "1000000", b"{}", &sig, 1_000_301).is_err());
        assert!(verify(&secret, "msg_2", "1000000", b"{}", &sig, 1_000_000).is_err());
        assert!(verify(&new_secret(), "msg_1", "1000000", b"{}", &sig, 1_000_000).is_err());
    }

    #[test]
    fn extreme_timestamps_are_refused_without_overflow() {
        let secret = new_secret();
        for ts in [
            "-9223372036854775808",
            "9223372036854775807",
            "99999999999999999999",
        ] {
            assert!(check_timestamp(ts, 1_000_000).is_err(), "{ts}");
            assert!(verify(&secret, "m", ts, b"{}", "v1,AAAA", 1_000_000).is_err());
        }
        assert!(check_timestamp("-9223372036854775808", i64::MAX).is_err());
        assert!(check_timestamp("9223372036854775807", i64::MIN).is_err());
        assert_eq!(check_timestamp("1000300", 1_000_000), Ok(1_000_300));
    }

    #[test]
    fn the_reference_example_of_the_specification_verifies() {
        // From the Standard Webhooks specification's test vectors.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(
            verify(
                secret,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                body,
                sig,
                1_614_265_330
            )
            .is_ok()
        );
    }
}
