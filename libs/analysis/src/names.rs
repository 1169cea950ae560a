//! How categories, severities, cause kinds and actions are written in
//! evidence, reasons and the explained text: the same words as their JSON
//! form, so what a person reads matches what the API returns.

use awfdrs_domain::decision::{ActionKind, Category, CauseKind, Likeness, Severity};

/// `transient`, `vendor_outage`, ….
#[must_use]
pub fn category(c: Category) -> &'static str {
    match c {
        Category::Transient => "transient",
        Category::VendorOutage => "vendor_outage",
        Category::RateLimited => "rate_limited",
        Category::Auth => "auth",
        Category::Validation => "validation",
        Category::Permanent => "permanent",
    }
}

/// `low`, `medium`, `high`, `critical`.
#[must_use]
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// `vendor_outage`, `workflow_regression`, ….
#[must_use]
pub fn cause(k: CauseKind) -> &'static str {
    match k {
        CauseKind::VendorOutage => "vendor_outage",
        CauseKind::WorkflowRegression => "workflow_regression",
        CauseKind::TenantConfiguration => "tenant_configuration",
        CauseKind::VendorThrottling => "vendor_throttling",
        CauseKind::DataProblem => "data_problem",
        CauseKind::Unknown => "unknown",
    }
}

/// `retry`, `hold`, `escalate`, `none`.
#[must_use]
pub fn action(a: ActionKind) -> &'static str {
    match a {
        ActionKind::Retry => "retry",
        ActionKind::Hold => "hold",
        ActionKind::Escalate => "escalate",
        ActionKind::None => "none",
    }
}

/// `same signature`, `same vendor and category`, `similar message`.
#[must_use]
pub fn likeness(l: Likeness) -> &'static str {
    match l {
        Likeness::SameSignature => "same signature",
        Likeness::SameVendorAndCategory => "same vendor and category",
        Likeness::SimilarMessage => "similar message",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: serde::Serialize>(value: T) -> String {
        serde_json::to_string(&value)
            .expect("serialises")
            .trim_matches('"')
            .to_owned()
    }

    #[test]
    fn names_are_the_json_forms() {
        for c in [
            Category::Transient,
            Category::VendorOutage,
            Category::RateLimited,
            Category::Auth,
            Category::Validation,
            Category::Permanent,
        ] {
            assert_eq!(category(c), json(c));
        }
        for s in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(severity(s), json(s));
        }
        for k in [
            CauseKind::VendorOutage,
            CauseKind::WorkflowRegression,
            CauseKind::TenantConfiguration,
            CauseKind::VendorThrottling,
            CauseKind::DataProblem,
            CauseKind::Unknown,
        ] {
            assert_eq!(cause(k), json(k));
        }
        for a in [
            ActionKind::Retry,
            ActionKind::Hold,
            ActionKind::Escalate,
            ActionKind::None,
        ] {
            assert_eq!(action(a), json(a));
        }
    }
}
