//! Checks that need more than a type: ranges, names, references between
//! files. Every problem is collected; nothing stops at the first.

use std::collections::BTreeMap;

use awfdrs_safety::{BreakerSettings, FieldProblem, RateLimit, RetryPolicy};

use crate::error::RulesError;
use crate::schema::{
    Category, ErrorCodesFile, ErrorRule, Mode, NO_RETRY, RetryPoliciesFile, Severity,
    VendorConfigFile,
};
use crate::{ERROR_CODES_FILE, RETRY_POLICIES_FILE, VENDOR_CONFIG_FILE};
use awfdrs_domain::{is_slug, normalize_code};

/// Every problem in the parsed files. A file that did not parse is `None`;
/// checks that need it are skipped rather than reported twice.
pub(crate) fn validate(
    codes: Option<&ErrorCodesFile>,
    policies: Option<&RetryPoliciesFile>,
    vendors: Option<&VendorConfigFile>,
) -> Vec<RulesError> {
    let mut out = Vec::new();
    let policy_map = policies.map(|p| &p.policies.0);
    if let Some(codes) = codes {
        validate_codes(codes, policy_map, &mut out);
    }
    if let Some(policies) = policies {
        validate_policies(policies, &mut out);
    }
    if let Some(vendors) = vendors {
        validate_vendors(vendors, &mut out);
    }
    out
}

fn validate_codes(
    file: &ErrorCodesFile,
    policies: Option<&BTreeMap<String, RetryPolicy>>,
    out: &mut Vec<RulesError>,
) {
    let err = |path: String, reason: String| RulesError::new(ERROR_CODES_FILE, path, reason);
    let threshold = file.approve_min_severity.unwrap_or(Severity::Low);
    if let Some(rule) = &file.default {
        validate_rule("default", rule, policies, out);
        validate_mode("default", rule, threshold, out);
    }
    for (code, rule) in &file.codes.0 {
        let path = format!("codes.{code}");
        if !is_slug(code) || normalize_code(code) != code.as_str() {
            out.push(err(
                path.clone(),
                format!(
                    "{code:?} is not a code slug ([a-z0-9][a-z0-9_-]{{0,62}}); \
                     incoming codes are looked up as {:?}",
                    normalize_code(code)
                ),
            ));
        }
        validate_rule(&path, rule, policies, out);
        validate_mode(&path, rule, threshold, out);
    }
}

/// A rule's `mode: approve` must be able to make a retry wait: its
/// severity must reach `approve_min_severity`.
fn validate_mode(path: &str, rule: &ErrorRule, threshold: Severity, out: &mut Vec<RulesError>) {
    if rule.mode == Some(Mode::Approve) && rule.severity < threshold {
        out.push(RulesError::new(
            ERROR_CODES_FILE,
            format!("{path}.mode"),
            format!(
                "approve has no effect: severity {} is below approve_min_severity {}",
                severity_name(rule.severity),
                severity_name(threshold)
            ),
        ));
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

fn validate_rule(
    path: &str,
    rule: &ErrorRule,
    policies: Option<&BTreeMap<String, RetryPolicy>>,
    out: &mut Vec<RulesError>,
) {
    let err = |field: &str, reason: String| {
        RulesError::new(ERROR_CODES_FILE, format!("{path}.{field}"), reason)
    };
    match (&rule.retry_policy, policies) {
        (Some(name), Some(policies)) if !policies.contains_key(name) => {
            let known: Vec<&str> = policies.keys().map(String::as_str).collect();
            out.push(err(
                "retry_policy",
                format!(
                    "unknown policy {name:?} (defined in {RETRY_POLICIES_FILE}: {}; or {NO_RETRY})",
                    known.join(", ")
                ),
            ));
        }
        (Some(_), _) if rule.category == Category::Permanent => {
            out.push(err(
                "retry_policy",
                format!("a permanent error is never retried; use {NO_RETRY}"),
            ));
        }
        _ => {}
    }
    if let Some(open_after) = &rule.open_after {
        if open_after.count == 0 {
            out.push(err("open_after.count", "must be at least 1".to_owned()));
        }
        if open_after.within.is_zero() {
            out.push(err(
                "open_after.within",
                "must be greater than zero".to_owned(),
            ));
        }
    }
}

fn validate_policies(file: &RetryPoliciesFile, out: &mut Vec<RulesError>) {
    for (name, policy) in &file.policies.0 {
        let path = format!("policies.{name}");
        if name == NO_RETRY {
            out.push(RulesError::new(
                RETRY_POLICIES_FILE,
                path.clone(),
                format!("{NO_RETRY:?} is reserved for \"never retry\""),
            ));
        } else if !is_slug(name) {
            out.push(RulesError::new(
                RETRY_POLICIES_FILE,
                path.clone(),
                format!("{name:?} is not a slug ([a-z0-9][a-z0-9_-]{{0,62}})"),
            ));
        }
        push_fields(out, RETRY_POLICIES_FILE, &path, policy.problems());
    }
}

fn validate_vendors(file: &VendorConfigFile, out: &mut Vec<RulesError>) {
    let defaults = &file.defaults;
    let default_breaker = defaults.breaker.problems();
    let default_rate = defaults.rate_limit.problems();
    push_fields(
        out,
        VENDOR_CONFIG_FILE,
        "defaults.breaker",
        default_breaker.clone(),
    );
    push_fields(
        out,
        VENDOR_CONFIG_FILE,
        "defaults.rate_limit",
        default_rate.clone(),
    );
    push_fields(
        out,
        VENDOR_CONFIG_FILE,
        "tenant_rate_limit",
        file.tenant_rate_limit.problems(),
    );
    for (vendor, overrides) in &file.vendors.0 {
        let path = format!("vendors.{vendor}");
        if !is_slug(vendor) {
            out.push(RulesError::new(
                VENDOR_CONFIG_FILE,
                path.clone(),
                format!("{vendor:?} is not a vendor slug ([a-z0-9][a-z0-9_-]{{0,62}})"),
            ));
        }
        // A merged value is blamed on the vendor only for problems the
        // defaults do not already have (those are reported once, above).
        let breaker: BreakerSettings = overrides.breaker.apply(defaults.breaker);
        let own = breaker
            .problems()
            .into_iter()
            .filter(|p| !default_breaker.contains(p));
        push_fields(
            out,
            VENDOR_CONFIG_FILE,
            &format!("{path}.breaker"),
            own.collect(),
        );
        let rate: RateLimit = overrides.rate_limit.apply(defaults.rate_limit);
        let own = rate
            .problems()
            .into_iter()
            .filter(|p| !default_rate.contains(p));
        push_fields(
            out,
            VENDOR_CONFIG_FILE,
            &format!("{path}.rate_limit"),
            own.collect(),
        );
    }
}

fn push_fields(out: &mut Vec<RulesError>, file: &str, path: &str, problems: Vec<FieldProblem>) {
    out.extend(
        problems
            .into_iter()
            .map(|p| RulesError::new(file, format!("{path}.{}", p.field), p.reason)),
    );
}
