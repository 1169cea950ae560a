//! Classification: the rule, then the failures' signals, each override
//! recorded with its signal, value and effect.

mod common;

use awfdrs_analysis::classify::classify;
use awfdrs_analysis::{AnalysisInput, StatusCount};
use awfdrs_domain::decision::{Category, Classification, Severity};

/// A transient error with a retry policy and no signals of its own.
fn base() -> AnalysisInput {
    common::incident(
        "checkout",
        "payment_timeout",
        Some("stripe"),
        common::rule(
            Severity::High,
            Category::Transient,
            Some("payment_timeout"),
            "timed out",
        ),
        10,
        "timed out",
    )
}

fn with(f: impl FnOnce(&mut AnalysisInput)) -> Classification {
    let mut input = base();
    f(&mut input);
    classify(&input)
}

fn signals(c: &Classification) -> Vec<(&str, &str)> {
    c.overrides
        .iter()
        .map(|o| (o.signal.as_str(), o.effect.as_str()))
        .collect()
}

#[test]
fn the_rule_alone_decides_when_the_failures_carry_no_signal() {
    let c = with(|_| {});
    assert_eq!(c.category, Category::Transient);
    assert_eq!(c.severity, Severity::High);
    assert!(c.retryable);
    assert_eq!(c.rule.key, "codes.payment_timeout");
    assert!(c.overrides.is_empty());
}

#[test]
fn http_statuses_override_the_rule() {
    struct Row {
        status: i32,
        category: Category,
        retryable: bool,
        effect: &'static str,
    }
    let rows = [
        Row {
            status: 429,
            category: Category::RateLimited,
            retryable: true,
            effect: "category transient -> rate_limited",
        },
        Row {
            status: 401,
            category: Category::Auth,
            retryable: false,
            effect: "category transient -> auth, retryable true -> false",
        },
        Row {
            status: 403,
            category: Category::Auth,
            retryable: false,
            effect: "category transient -> auth, retryable true -> false",
        },
        Row {
            status: 400,
            category: Category::Validation,
            retryable: false,
            effect: "category transient -> validation, retryable true -> false",
        },
        Row {
            status: 422,
            category: Category::Validation,
            retryable: false,
            effect: "category transient -> validation, retryable true -> false",
        },
    ];
    for row in rows {
        let c = with(|i| i.failures.http_statuses = common::statuses(&[(row.status, 10)]));
        assert_eq!(
            (c.category, c.retryable),
            (row.category, row.retryable),
            "{}",
            row.status
        );
        assert_eq!(signals(&c), [("http_status", row.effect)], "{}", row.status);
        assert_eq!(
            c.overrides[0].value,
            format!("{} (10 of 10 failures)", row.status)
        );
    }
}

#[test]
fn a_5xx_makes_a_permanent_rule_transient_and_retryable_and_keeps_an_outage_an_outage() {
    let c = with(|i| {
        i.rule.category = Category::Permanent;
        i.rule.retry_policy = None;
        i.failures.http_statuses = common::statuses(&[(503, 10)]);
    });
    assert_eq!((c.category, c.retryable), (Category::Transient, true));
    assert_eq!(
        signals(&c),
        [(
            "http_status",
            "category permanent -> transient, retryable false -> true"
        )]
    );
    let outage = with(|i| {
        i.rule.category = Category::VendorOutage;
        i.failures.http_statuses = common::statuses(&[(502, 10)]);
    });
    assert_eq!(outage.category, Category::VendorOutage);
    assert!(outage.overrides.is_empty());
}

#[test]
fn the_most_frequent_status_decides_and_a_tie_goes_to_the_lower_status_whatever_the_order() {
    let c = with(|i| i.failures.http_statuses = common::statuses(&[(503, 3), (401, 7)]));
    assert_eq!(c.category, Category::Auth);
    let forwards = with(|i| i.failures.http_statuses = common::statuses(&[(503, 5), (429, 5)]));
    let backwards = with(|i| i.failures.http_statuses = common::statuses(&[(429, 5), (503, 5)]));
    assert_eq!(forwards, backwards);
    assert_eq!(forwards.category, Category::RateLimited);
}

#[test]
fn a_status_that_says_nothing_changes_nothing() {
    let c = with(|i| {
        i.failures.http_statuses = vec![StatusCount {
            status: 404,
            count: 10,
        }]
    });
    assert!(c.overrides.is_empty());
}

#[test]
fn a_retry_after_makes_a_failure_retryable_and_rate_limited() {
    let c = with(|i| {
        i.rule.retry_policy = None;
        i.failures.retry_after_secs = Some(30);
    });
    assert_eq!((c.category, c.retryable), (Category::RateLimited, true));
    assert_eq!(c.overrides[0].signal, "retry_after");
    assert_eq!(c.overrides[0].value, "30s");
    assert_eq!(
        c.overrides[0].effect,
        "category transient -> rate_limited, retryable false -> true"
    );
}

#[test]
fn a_retry_after_on_an_outage_keeps_it_an_outage() {
    let c = with(|i| {
        i.rule.category = Category::VendorOutage;
        i.failures.retry_after_secs = Some(120);
    });
    assert_eq!(c.category, Category::VendorOutage);
    assert!(c.overrides.is_empty());
}

#[test]
fn a_producer_saying_not_retryable_by_majority_or_tie_makes_it_not_retryable() {
    for (yes, no, retryable) in [(2, 8, false), (5, 5, false), (8, 2, true)] {
        let c = with(|i| {
            i.failures.producer_retryable = yes;
            i.failures.producer_not_retryable = no;
        });
        assert_eq!(c.retryable, retryable, "{yes} yes, {no} no");
        if !retryable {
            assert_eq!(signals(&c), [("retryable", "retryable true -> false")]);
            assert_eq!(
                c.overrides[0].value,
                format!("false ({no} of {} flagged)", yes + no)
            );
        }
    }
}

#[test]
fn a_producer_saying_not_retryable_wins_over_a_retry_after() {
    let c = with(|i| {
        i.failures.retry_after_secs = Some(10);
        i.failures.producer_not_retryable = 3;
    });
    assert!(!c.retryable);
    assert_eq!(
        c.overrides
            .iter()
            .map(|o| o.signal.as_str())
            .collect::<Vec<_>>(),
        ["retry_after", "retryable"]
    );
}

#[test]
fn a_producer_saying_retryable_is_believed_only_where_a_retry_can_help() {
    let transient = with(|i| {
        i.rule.retry_policy = None;
        i.failures.producer_retryable = 4;
    });
    assert!(transient.retryable);
    assert_eq!(transient.overrides[0].signal, "retryable");
    let auth = with(|i| {
        i.failures.http_statuses = common::statuses(&[(401, 4)]);
        i.failures.producer_retryable = 4;
    });
    assert!(!auth.retryable);
    assert_eq!(signals(&auth).len(), 1);
}

#[test]
fn a_retry_after_does_not_make_a_credentials_or_request_failure_retryable() {
    for status in [401, 422] {
        let c = with(|i| {
            i.failures.http_statuses = common::statuses(&[(status, 10)]);
            i.failures.retry_after_secs = Some(30);
        });
        assert!(!c.retryable, "{status}");
        assert_eq!(
            c.overrides
                .iter()
                .map(|o| o.signal.as_str())
                .collect::<Vec<_>>(),
            ["http_status"],
            "{status}"
        );
    }
}
