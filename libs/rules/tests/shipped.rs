//! The rules shipped in `config/rules/` load, and lookups behave.

use std::path::PathBuf;
use std::time::Duration;

use awfdrs_rules::{Category, Rules, Severity};

fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/rules")
}

fn shipped() -> Rules {
    Rules::load(&shipped_dir()).unwrap_or_else(|e| panic!("shipped rules are invalid:\n{e}"))
}

#[test]
fn the_shipped_rules_load_and_validate() {
    let rules = shipped();
    for code in [
        "payment_timeout",
        "gateway_timeout",
        "rate_limited",
        "http_429",
        "auth_failed",
        "invalid_api_key",
        "validation_error",
        "card_declined",
        "vendor_5xx",
        "service_unavailable",
        "connection_reset",
        "dns_failure",
    ] {
        assert!(rules.known_error_code(code).is_some(), "{code} is missing");
    }
    let vendors: Vec<&str> = rules.vendors().map(|(v, _)| v).collect();
    assert_eq!(
        vendors,
        ["adyen", "paypal", "sandbox", "sendgrid", "stripe", "twilio"]
    );
}

#[test]
fn codes_are_looked_up_after_normalisation() {
    let rules = shipped();
    let rule = rules.error_code("  Payment_Timeout ");
    assert_eq!(rule.severity, Severity::High);
    assert!(rule.vendor_fault);
    let (name, policy) = rules.retry_policy_for("Payment.Timeout").unwrap();
    assert_eq!(name, "payment_timeout");
    assert_eq!(policy.initial_delay, Duration::from_secs(10));
    // The same normalisation as failure signatures: runs of `_` collapse.
    assert!(rules.known_error_code("HTTP  429").is_some());
}

#[test]
fn unknown_codes_get_the_default_rule_and_are_not_retried() {
    let rules = shipped();
    assert!(rules.known_error_code("flux_capacitor_melted").is_none());
    assert_eq!(
        rules.error_code("flux_capacitor_melted"),
        rules.default_error_rule()
    );
    assert_eq!(rules.retry_policy_for("flux_capacitor_melted"), None);
}

#[test]
fn permanent_errors_are_never_retried() {
    let rules = shipped();
    let declined = rules.error_code("card_declined");
    assert_eq!(declined.category, Category::Permanent);
    assert_eq!(declined.retry_policy, None);
}

#[test]
fn a_vendor_entry_overrides_only_the_fields_it_names() {
    let rules = shipped();
    let defaults = rules.vendor_defaults();
    let stripe = rules.vendor("stripe");
    assert_eq!(stripe.breaker.minimum_calls, 30);
    assert_eq!(stripe.breaker.window, defaults.breaker.window);
    assert_eq!(stripe.rate_limit.burst, 50);
    assert_eq!(rules.vendor("some-new-vendor"), defaults);
}
