//! The realistic scenarios the tests share, each from the fixtures in
//! `common`: one row per kind of cause, and noise.

use awfdrs_analysis::{AnalysisInput, BreakerFacts, ReleaseFacts, VendorFacts};
use awfdrs_domain::decision::{Category, Severity};
use awfdrs_rules::ErrorRule;

use super::{id, incident, past, quiet_vendor, rule, statuses, t};

/// Stripe failing for three of the tenant's workflows and four other
/// tenants, its breaker open.
pub fn vendor_outage() -> AnalysisInput {
    let mut input = incident(
        "checkout",
        "payment_timeout",
        Some("stripe"),
        rule(
            Severity::High,
            Category::Transient,
            Some("payment_timeout"),
            "The payment provider did not answer in time.",
        ),
        40,
        "stripe: upstream connect error or disconnect/reset before headers",
    );
    input.failures.http_statuses = statuses(&[(503, 38), (504, 2)]);
    input.failures.distinct_runs = 40;
    input.step.successes_before = 30;
    input.step.last_success_at = Some(t(-1));
    input.step.last_success_event = Some(id(0xD001));
    input.vendor = Some(VendorFacts {
        breaker: Some(BreakerFacts {
            state: "OPEN".to_owned(),
            failure_rate: 0.85,
            opened_at: Some(t(4)),
        }),
        tenant_workflows_failing: vec![
            "checkout".to_owned(),
            "invoicing".to_owned(),
            "refunds".to_owned(),
        ],
        tenant_calls: 60,
        tenant_failures: 50,
        tenant_successes_elsewhere: 4,
        other_tenants_failing: 4,
        other_tenant_failures: 300,
        other_tenant_successes: 20,
        other_tenants_same_code: 4,
        ..quiet_vendor("stripe", "checkout")
    });
    input
}

/// `fulfilment/ship` failing from release 2026.03.1 on, after 120 successes.
pub fn regression() -> AnalysisInput {
    let mut input = incident(
        "fulfilment",
        "unexpected_response",
        Some("shippo"),
        ErrorRule::builtin_default(),
        25,
        "unexpected field 'parcel.weight_unit' in response",
    );
    input.incident.inputs.step = Some("ship".to_owned());
    input.failures.distinct_runs = 25;
    input.failures.releases = vec![
        ReleaseFacts {
            release: "2026.02.4".to_owned(),
            failures: 0,
            successes: 120,
            first_at: t(-3000),
        },
        ReleaseFacts {
            release: "2026.03.1".to_owned(),
            failures: 25,
            successes: 0,
            first_at: t(0),
        },
    ];
    input.step.successes_before = 120;
    input.step.last_success_at = Some(t(-2));
    input.step.last_success_event = Some(id(0xD002));
    input.vendor = Some(quiet_vendor("shippo", "fulfilment"));
    input
}

/// Every call the tenant makes to SendGrid answers 401; nobody else's does.
pub fn bad_credentials() -> AnalysisInput {
    let mut input = incident(
        "notify",
        "auth_failed",
        Some("sendgrid"),
        rule(
            Severity::High,
            Category::Auth,
            None,
            "The vendor rejected our credentials; retrying will not fix it.",
        ),
        12,
        "401 Unauthorized: The provided authorization grant is invalid, expired, or revoked",
    );
    input.failures.http_statuses = statuses(&[(401, 12)]);
    input.failures.producer_retryable = 12;
    input.failures.distinct_runs = 12;
    input.vendor = Some(VendorFacts {
        tenant_calls: 12,
        tenant_failures: 12,
        tenant_successes_elsewhere: 0,
        other_tenant_successes: 400,
        ..quiet_vendor("sendgrid", "notify")
    });
    input.incident.inputs.step = Some("send".to_owned());
    input
}

/// The tenant's requests to HubSpot are all refused with 422.
pub fn validation_errors() -> AnalysisInput {
    let mut input = incident(
        "crm-sync",
        "validation_error",
        Some("hubspot"),
        rule(
            Severity::Low,
            Category::Validation,
            None,
            "The vendor rejected the request's content.",
        ),
        8,
        "Property \"lifecyclestage\" does not exist",
    );
    input.failures.http_statuses = statuses(&[(422, 8)]);
    input.failures.distinct_runs = 4;
    input.vendor = Some(VendorFacts {
        tenant_calls: 8,
        tenant_failures: 8,
        tenant_successes_elsewhere: 0,
        ..quiet_vendor("hubspot", "crm-sync")
    });
    input.incident.inputs.step = Some("upsert".to_owned());
    input
}

/// OpenAI answering 429 with a Retry-After of 45 seconds.
pub fn throttling() -> AnalysisInput {
    let mut input = incident(
        "summarise",
        "rate_limited",
        Some("openai"),
        rule(
            Severity::Medium,
            Category::RateLimited,
            Some("rate_limited"),
            "The vendor is throttling requests.",
        ),
        30,
        "Rate limit reached for requests per min. Please try again in 45s.",
    );
    input.failures.http_statuses = statuses(&[(429, 30)]);
    input.failures.retry_after_secs = Some(45);
    input.failures.distinct_runs = 9;
    input.incident.inputs.step = Some("complete".to_owned());
    input
}

/// One step failing the same way on thirty runs while the vendor serves
/// the tenant's other calls and other tenants.
pub fn data_problem() -> AnalysisInput {
    let mut input = incident(
        "checkout",
        "invalid_address",
        Some("avalara"),
        ErrorRule::builtin_default(),
        30,
        "address line 1 could not be resolved to a jurisdiction",
    );
    input.incident.inputs.step = Some("tax".to_owned());
    input.failures.distinct_runs = 30;
    input.step.successes_before = 1;
    input.vendor = Some(VendorFacts {
        tenant_successes_elsewhere: 500,
        other_tenant_successes: 1000,
        ..quiet_vendor("avalara", "checkout")
    });
    input
}

/// A single timeout, no vendor, nothing before it, decided a minute later.
pub fn noise_blip() -> AnalysisInput {
    let mut input = incident(
        "nightly-report",
        "socket_timeout",
        None,
        rule(
            Severity::Low,
            Category::Transient,
            Some("standard"),
            "A socket timed out.",
        ),
        1,
        "read timed out",
    );
    input.incident.last_seen = t(0);
    input.failures.last_at = t(0);
    input.at = t(1);
    input.incident.inputs.step = Some("render".to_owned());
    input
}

/// Two failures of an unexplained low-severity code nobody retries.
pub fn noise_unexplained() -> AnalysisInput {
    let mut input = incident(
        "nightly-report",
        "odd_checksum",
        None,
        rule(
            Severity::Low,
            Category::Permanent,
            None,
            "A checksum did not match.",
        ),
        2,
        "checksum mismatch on page 3",
    );
    input.incident.inputs.step = Some("render".to_owned());
    input
}

/// The outage with a history: an earlier incident of the same signature, one
/// of the same vendor and category, one with a close message, one resolved
/// by an operator that is still listed, and one unrelated.
pub fn vendor_outage_with_history() -> AnalysisInput {
    let mut input = vendor_outage();
    let sig = input.incident.signature.clone();
    let mut by_operator = past(
        0x2002,
        "acme:invoicing:gateway_timeout",
        "gateway_timeout",
        Some("stripe"),
        Category::Transient,
        "stripe: gateway timeout after 30s",
        t(-20_000),
    );
    by_operator.resolved_by = Some("ops-alice".to_owned());
    by_operator.resolved_after_successes = None;
    let mut open = past(
        0x2003,
        "acme:payouts:upstream_reset",
        "upstream_reset",
        Some("adyen"),
        Category::Transient,
        "adyen: upstream connect error or disconnect/reset before headers",
        t(-5_000),
    );
    open.status = "ACTIONED".to_owned();
    open.resolved_at = None;
    open.resolved_by = None;
    open.resolved_after_successes = None;
    input.past = vec![
        past(
            0x2001,
            &sig,
            "payment_timeout",
            Some("stripe"),
            Category::Transient,
            "stripe: upstream connect error or disconnect/reset before headers",
            t(-40_000),
        ),
        by_operator,
        open,
        past(
            0x2004,
            "acme:crm-sync:validation_error",
            "validation_error",
            Some("hubspot"),
            Category::Validation,
            "Property \"email\" is invalid",
            t(-1_000),
        ),
    ];
    input
}
