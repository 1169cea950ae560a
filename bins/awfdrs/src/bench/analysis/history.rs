//! The past the analysis modes decide against: resolved incidents spread
//! over twenty workflows (each calling one vendor) times twelve error codes,
//! with a few hundred error messages whose vectors and LSH keys are
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

/// Message templates; `{v}` is a vendor, `{o}` what was being done.
const TEMPLATES: [&str; 12] = [
    "{v} returned 402: card declined while creating {o}",
    "{v} request timed out after 30000 ms on {o}",
    "{v} rejected the request: invalid parameters for {o}",
    "authentication with {v} failed for {o}: bad credentials",
    "could not resolve the host of {v} while calling {o}",
    "{v} answered 503 service unavailable for {o}",
    "insufficient funds on the account charged for {o} at {v}",
    "{v} throttled {o}: too many requests, retry later",
    "connection reset by peer while talking to {v} about {o}",
    "{v} returned 500 internal server error on {o}",
    "validation failed at {v}: {o} is missing a required field",
    "the api key for {v} was revoked before {o}",
];

/// What was being done when a call failed.
const OBJECTS: [&str; 3] = ["payment intent 4821", "customer record", "refund batch 17"];

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
    /// Every template for every vendor and object: 360 messages.
    pub fn new() -> Self {
        let mut vendors: Vec<&str> = WORKFLOWS.iter().map(|w| w.1).collect();
        vendors.sort_unstable();
        vendors.dedup();
        let mut m = Self {
            texts: Vec::new(),
            vectors: Vec::new(),
            keys: Vec::new(),
        };
        for template in TEMPLATES {
            for vendor in &vendors {
                for object in OBJECTS {
                    let text = template.replace("{v}", vendor).replace("{o}", object);
                    let vector = similar::vector(&text);
                    let keys = lsh::keys(&vector);
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
        let m = Messages::new();
        assert_eq!(m.texts.len(), 360);
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
