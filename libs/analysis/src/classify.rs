//! Classification: the error code's rule, then the failures' own signals in
//! a fixed order (`http_status`, `retry_after`, the producer's `retryable`
//! flag), each recorded as an override when it changed what the rule said.

use awfdrs_domain::decision::{Category, Classification, Override};

use crate::input::{AnalysisInput, FailureSignals, StatusCount};
use crate::names;

/// The classification of `input`'s failures.
#[must_use]
pub fn classify(input: &AnalysisInput) -> Classification {
    let rule = &input.rule;
    let mut draft = Draft {
        category: rule.category,
        retryable: rule.retry_policy.is_some(),
        overrides: Vec::new(),
    };
    draft.apply_http_status(&input.failures);
    draft.apply_retry_after(&input.failures);
    draft.apply_producer_flag(&input.failures);
    Classification {
        category: draft.category,
        severity: rule.severity,
        retryable: draft.retryable,
        rule: input.rule_ref.clone(),
        description: rule.description.clone(),
        overrides: draft.overrides,
    }
}

/// The status most of the failures carried; a tie goes to the lower status,
/// so the answer does not depend on the order the store listed them in.
#[must_use]
pub fn dominant_status(failures: &FailureSignals) -> Option<StatusCount> {
    failures
        .http_statuses
        .iter()
        .copied()
        .filter(|s| s.count > 0)
        .max_by(|a, b| a.count.cmp(&b.count).then(b.status.cmp(&a.status)))
}

/// How many failures carried `status`.
#[must_use]
pub fn status_count(failures: &FailureSignals, status: i32) -> i64 {
    failures
        .http_statuses
        .iter()
        .filter(|s| s.status == status)
        .map(|s| s.count)
        .sum()
}

/// What an HTTP status says about a failure, when it says anything.
fn status_meaning(status: i32) -> Option<(Category, bool)> {
    match status {
        429 => Some((Category::RateLimited, true)),
        401 | 403 => Some((Category::Auth, false)),
        400 | 422 => Some((Category::Validation, false)),
        500..=599 => Some((Category::Transient, true)),
        _ => None,
    }
}

/// Categories where another try can succeed, so a producer's "retryable"
/// is believed; for auth, validation and permanent failures it is not,
/// because retrying the same request cannot fix it.
fn retry_can_help(category: Category) -> bool {
    matches!(
        category,
        Category::Transient | Category::VendorOutage | Category::RateLimited
    )
}

/// A classification being refined signal by signal.
struct Draft {
    category: Category,
    retryable: bool,
    overrides: Vec<Override>,
}

impl Draft {
    /// The dominant HTTP status: 429 throttling, 401/403 credentials,
    /// 400/422 the request, 5xx a vendor-side failure that may pass.
    fn apply_http_status(&mut self, failures: &FailureSignals) {
        let Some(dominant) = dominant_status(failures) else {
            return;
        };
        let Some((category, retryable)) = status_meaning(dominant.status) else {
            return;
        };
        // A 5xx confirms a vendor outage as well as a transient failure.
        let category = if category == Category::Transient && self.category == Category::VendorOutage
        {
            Category::VendorOutage
        } else {
            category
        };
        let value = format!(
            "{} ({} of {} failures)",
            dominant.status, dominant.count, failures.count
        );
        self.set("http_status", value, category, retryable);
    }

    /// A `Retry-After` is the vendor saying when another try will work;
    /// on a credentials or request failure it says nothing about those.
    fn apply_retry_after(&mut self, failures: &FailureSignals) {
        let Some(secs) = failures.retry_after_secs else {
            return;
        };
        if matches!(self.category, Category::Auth | Category::Validation) {
            return;
        }
        // An outage that announces its end is still an outage.
        let category = if self.category == Category::VendorOutage {
            Category::VendorOutage
        } else {
            Category::RateLimited
        };
        self.set("retry_after", format!("{secs}s"), category, true);
    }

    /// The producer's flag, by majority; a tie goes to "not retryable",
    /// the side that cannot do harm.
    fn apply_producer_flag(&mut self, failures: &FailureSignals) {
        let (yes, no) = (failures.producer_retryable, failures.producer_not_retryable);
        if yes == 0 && no == 0 {
            return;
        }
        let says = yes > no;
        if says && !retry_can_help(self.category) {
            return;
        }
        let value = format!("{says} ({} of {} flagged)", yes.max(no), yes + no);
        self.set("retryable", value, self.category, says);
    }

    /// Records an override when `category` or `retryable` differ from what
    /// the classification says so far.
    fn set(&mut self, signal: &str, value: String, category: Category, retryable: bool) {
        let mut changes = Vec::new();
        if category != self.category {
            changes.push(format!(
                "category {} -> {}",
                names::category(self.category),
                names::category(category)
            ));
        }
        if retryable != self.retryable {
            changes.push(format!("retryable {} -> {}", self.retryable, retryable));
        }
        if changes.is_empty() {
            return;
        }
        self.category = category;
        self.retryable = retryable;
        self.overrides.push(Override {
            signal: signal.to_owned(),
            value,
            effect: changes.join(", "),
        });
    }
}
