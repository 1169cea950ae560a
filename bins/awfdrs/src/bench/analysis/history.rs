//! The past the analysis modes decide against: resolved incidents spread
//! over twenty workflows (each calling one vendor) times twelve error codes,
//! with 324 error messages whose vectors and LSH keys are
//! computed once here and reused.

use awfdrs_analysis::{lsh, similar};
use awfdrs_domain::Signature;
use awfdrs_store::{PastIncidentSeed, PastKind, Store, StoreError, Tenant};

/// The workflows of the past incidents and the vendor each calls.
const WORKFLOWS: [(&str, &str); 20] = [
    ("checkout", "stripe"),
    ("payouts", "adyen"),
    ("onboarding", "twilio"),
    ("refunds", "stripe"),
    ("invoicing", "quickbooks"),
    ("kyc", "onfido"),
    ("shipping", "shippo"),
    ("billing", "chargebee"),
    ("signup", "sendgrid"),
    ("renewals", "paypal"),
    ("disputes", "stripe"),
    ("settlements", "adyen"),
    ("two-factor", "twilio"),
    ("tax-filing", "quickbooks"),
    ("identity-check", "onfido"),
    ("returns", "shippo"),
    ("dunning", "chargebee"),
    ("receipts", "sendgrid"),
    ("marketplace-payouts", "paypal"),
    ("gift-cards", "stripe"),
];

/// The codes the past incidents failed with.
const CODES: [&str; 12] = [
    "payment_timeout",
    "gateway_timeout",
    "rate_limited",
    "auth_failed",
    "invalid_api_key",
    "validation_error",
    "card_declined",
    "insufficient_funds",
    "vendor_5xx",
    "service_unavailable",
    "connection_reset",
    "dns_failure",
];

/// Who resolved them: mostly the incident itself, after successes.
const RESOLVERS: [&str; 10] = [
    "auto-resolve",
    "auto-resolve",
    "auto-resolve",
    "auto-resolve",
    "auto-resolve",
    "auto-resolve",
    "operator:alice",
    "operator:bob",
    "operator:carol",
    "operator:dan",
];

/// Message templates, each with the details it is seen with; `{v}` is a
/// vendor, `{d}` one of the details.
const TEMPLATES: [(&str, [&str; 3]); 12] = [
    (
        "Your card was declined by {v}: {d}",
        ["do_not_honor", "generic_decline", "lost_card"],
    ),
    (
        "upstream timeout: no response from {v} within 30s ({d})",
        ["POST /v1/charges", "GET /v2/balance", "POST /payouts"],
    ),
    (
        "{v} rejected field {d}: must be a valid value",
        ["amount", "currency", "postal_code"],
    ),
    (
        "401 Unauthorized from {v}: {d}",
        ["invalid signature", "token expired", "unknown key id"],
    ),
    (
        "getaddrinfo ENOTFOUND api.{v}.com ({d})",
        ["EAI_AGAIN", "EAI_NONAME", "SERVFAIL"],
    ),
    (
        "{v} is temporarily unavailable, status page reports {d}",
        ["degraded performance", "partial outage", "major outage"],
    ),
    (
        "Insufficient funds in {d} account #4411 held at {v}",
        ["checking", "savings", "merchant"],
    ),
    (
        "Too Many Requests: {v} allows {d} per second per key",
        ["25 requests", "100 calls", "10 writes"],
    ),
    (
        "ECONNRESET: socket hang up after TLS handshake with {v} {d}",
        ["eu-west-1", "us-east-2", "ap-south-1"],
    ),
    (
        "HTTP 500 Internal Server Error; {v} request-id req_{d}",
        ["8Kd2xQ", "p0Zt7M", "Lw3nVb"],
    ),
    (
        "schema validation failed for {v} webhook payload: {d}",
        [
            "missing 'customer'",
            "unexpected null in 'items'",
            "bad date format",
        ],
    ),
    (
        "API key for {v} revoked by an administrator ({d})",
        ["rotated", "compromised", "account closed"],
    ),
];

/// The vendor of a new incident `i`: one the history knows.
pub fn vendor(i: u64) -> &'static str {
    WORKFLOWS[(i % WORKFLOWS.len() as u64) as usize].1
}

/// The error messages of the history and of the load, with their vectors
/// and LSH keys as the analyzer computes them.
#[derive(Debug)]
pub struct Messages {
    texts: Vec<String>,
    vectors: Vec<f32>,
    keys: Vec<i32>,
}

impl Messages {
    /// Every template for every vendor and each of its details: 324
    /// messages.
    pub fn new(tenant: uuid::Uuid) -> Self {
        let mut vendors: Vec<&str> = WORKFLOWS.iter().map(|w| w.1).collect();
        vendors.sort_unstable();
        vendors.dedup();
        let mut m = Self {
            texts: Vec::new(),
            vectors: Vec::new(),
            keys: Vec::new(),
        };
        for (template, details) in TEMPLATES {
            for vendor in &vendors {
                for detail in details {
                    let text = template.replace("{v}", vendor).replace("{d}", detail);
                    let vector = similar::vector(&text);
                    let keys = lsh::keys(tenant, &vector);
                    debug_assert_eq!(keys.len(), lsh::BANDS);
                    m.vectors.extend_from_slice(&vector);
                    m.keys.extend_from_slice(&keys);
                    m.texts.push(text);
                }
            }
        }
        m
    }

    /// Message `i` (modulo their number).
    pub fn text(&self, i: u64) -> &str {
        &self.texts[(i % self.texts.len() as u64) as usize]
    }
}

/// Writes `n` resolved past incidents of `tenant`, spread over the
/// workflows, codes, messages and resolvers; returns how many it wrote.
///
/// # Errors
/// On database failure.
pub async fn seed(
    store: &Store,
    tenant: &Tenant,
    n: u64,
    messages: &Messages,
) -> Result<u64, StoreError> {
    if n == 0 {
        return Ok(0);
    }
    let kinds: Vec<PastKind> = WORKFLOWS
        .iter()
        .flat_map(|(workflow, vendor)| {
            CODES.iter().map(|code| PastKind {
                workflow: (*workflow).to_owned(),
                vendor: (*vendor).to_owned(),
                code: (*code).to_owned(),
                signature: Signature::compute(&tenant.slug, workflow, code)
                    .as_str()
                    .to_owned(),
            })
        })
        .collect();
    let resolvers: Vec<String> = RESOLVERS.iter().map(|r| (*r).to_owned()).collect();
    store
        .bench_seed_past_incidents(
            tenant.id,
            n,
            PastIncidentSeed {
                kinds: &kinds,
                vectors: &messages.vectors,
                dims: similar::DIMS,
                keys: &messages.keys,
                bands: lsh::BANDS,
                resolvers: &resolvers,
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_distinct_and_share_lsh_keys_with_others() {
        let m = Messages::new(uuid::Uuid::from_u128(1));
        assert_eq!(m.texts.len(), 324);
        let distinct: std::collections::HashSet<&str> =
            m.texts.iter().map(String::as_str).collect();
        assert_eq!(distinct.len(), m.texts.len());
        assert_eq!(m.vectors.len(), m.texts.len() * similar::DIMS);
        assert_eq!(m.keys.len(), m.texts.len() * lsh::BANDS);
        // Messages of one template share keys, so the index finds candidates.
        let first: std::collections::HashSet<i32> = m.keys[..lsh::BANDS].iter().copied().collect();
        let second = &m.keys[lsh::BANDS..2 * lsh::BANDS];
        assert!(second.iter().any(|k| first.contains(k)));
    }

    #[test]
    fn new_incidents_call_vendors_of_the_history() {
        for i in 0..100 {
            assert!(WORKFLOWS.iter().any(|w| w.1 == vendor(i)));
        }
    }
}
