//! Root cause: one hypothesis for every [`CauseKind`], each with the
//! evidence it rests on and a confidence, ranked by confidence and then by
//! a fixed order of kinds. "Unknown" always stands at [`THRESHOLD`], so it
//! wins exactly when no other hypothesis reaches it. The best of the other
//! causes is the rejected alternative, with the reason it lost.
//!
//! What each hypothesis weighs (its module has the numbers):
//!
//! * vendor outage: the vendor failing for two or more of the tenant's
//!   workflows, for other tenants (a count), its breaker open or half-open,
//!   its error rate across tenants; weakened for auth, validation, permanent
//!   and rate-limited failures, which an outage does not cause.
//! * vendor throttling: a `rate_limited` classification, the share of 429s,
//!   a `Retry-After`.
//! * tenant configuration: an auth (more) or validation (less) failure, no
//!   other tenant seeing the code, none of the tenant's calls to the vendor
//!   succeeding; weakened when other tenants see the code.
//! * workflow regression: a run of successes of the step before the first
//!   failure, a release boundary (an earlier release succeeded, a later one
//!   is the first that failed); weakened when the vendor fails beyond the
//!   workflow.
//! * data problem: many distinct runs failing, the vendor serving the
//!   tenant's other calls or other tenants, a validation or permanent
//!   failure; weakened when several workflows fail or a release explains it.

mod config;
mod data;
mod regression;
mod vendor;

use std::cmp::Ordering;

use awfdrs_domain::decision::{
    CauseKind, Classification, Evidence, Hypothesis, Rejected, RootCause, round2,
};

use crate::input::AnalysisInput;
use crate::names;

/// The confidence a cause must reach to beat "unknown", and the confidence
/// "unknown" has.
pub const THRESHOLD: f64 = 0.3;

/// The kinds in the order that breaks a tie of confidence: the causes that
/// call for the most caution first, "unknown" last.
const KIND_ORDER: [CauseKind; 6] = [
    CauseKind::VendorOutage,
    CauseKind::VendorThrottling,
    CauseKind::TenantConfiguration,
    CauseKind::WorkflowRegression,
    CauseKind::DataProblem,
    CauseKind::Unknown,
];

/// A hypothesis and the strongest fact against it, for when it loses.
pub(crate) struct Scored {
    pub hypothesis: Hypothesis,
    pub against: String,
}

impl Scored {
    /// A hypothesis of `kind` with confidence `score`, clamped to `[0, cap]`
    /// and rounded to two decimals.
    pub(crate) fn new(
        kind: CauseKind,
        score: f64,
        cap: f64,
        summary: String,
        evidence: Vec<Evidence>,
        against: String,
    ) -> Self {
        Self {
            hypothesis: Hypothesis {
                kind,
                confidence: round2(score.clamp(0.0, cap)),
                summary,
                evidence,
            },
            against,
        }
    }
}

/// Evidence that is a fact alone; set the other fields with struct update
/// syntax (`Evidence { count: Some(n), ..fact("…") }`).
pub(crate) fn fact(text: impl Into<String>) -> Evidence {
    Evidence {
        fact: text.into(),
        count: None,
        window_secs: None,
        first_at: None,
        last_at: None,
        event_ids: Vec::new(),
    }
}

/// The root cause of `input`'s failures, classified as `class`.
#[must_use]
pub fn diagnose(input: &AnalysisInput, class: &Classification) -> RootCause {
    let mut scored = vec![
        vendor::outage(input, class),
        vendor::throttling(input, class),
        config::configuration(input, class),
        regression::regression(input, class),
        data::data_problem(input, class),
        unknown(input),
    ];
    scored.sort_by(|a, b| ranking(&a.hypothesis, &b.hypothesis));
    // "Unknown" is the baseline, not an alternative: when a cause wins, the
    // rejected one is the best of the other causes.
    let winner = &scored[0].hypothesis;
    let rejected = scored[1..]
        .iter()
        .find(|s| winner.kind == CauseKind::Unknown || s.hypothesis.kind != CauseKind::Unknown)
        .map(|runner_up| rejection(winner, runner_up));
    let ranked: Vec<Hypothesis> = scored.into_iter().map(|s| s.hypothesis).collect();
    RootCause {
        hypothesis: ranked[0].clone(),
        ranked,
        rejected,
    }
}

/// Confidence descending, then [`KIND_ORDER`].
fn ranking(a: &Hypothesis, b: &Hypothesis) -> Ordering {
    b.confidence
        .total_cmp(&a.confidence)
        .then_with(|| kind_rank(a.kind).cmp(&kind_rank(b.kind)))
}

fn kind_rank(kind: CauseKind) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(usize::MAX)
}

/// Why `runner_up` lost to `winner`.
fn rejection(winner: &Hypothesis, runner_up: &Scored) -> Rejected {
    let lost = &runner_up.hypothesis;
    let reason = if winner.kind == CauseKind::Unknown {
        format!(
            "{}; {:.2} is below the {THRESHOLD:.2} a cause must reach",
            runner_up.against, lost.confidence
        )
    } else {
        format!(
            "{}; {:.2} against {:.2} for {}",
            runner_up.against,
            lost.confidence,
            winner.confidence,
            names::cause(winner.kind)
        )
    };
    Rejected {
        kind: lost.kind,
        confidence: lost.confidence,
        reason,
    }
}

/// "Unknown": what was seen, and that no cause explains it better.
fn unknown(input: &AnalysisInput) -> Scored {
    let f = &input.failures;
    let seen = Evidence {
        count: Some(f.count),
        first_at: Some(f.first_at),
        last_at: Some(f.last_at),
        event_ids: own_events(input),
        ..fact(format!(
            "{} failures of {} with code {}",
            f.count, input.incident.inputs.workflow_id, input.incident.inputs.error_code
        ))
    };
    Scored::new(
        CauseKind::Unknown,
        THRESHOLD,
        THRESHOLD,
        format!("no cause reached a confidence of {THRESHOLD:.2}"),
        vec![seen],
        format!("the evidence for a known cause reaches {THRESHOLD:.2}"),
    )
}

/// Most event ids one piece of evidence lists.
const MAX_EVENT_IDS: usize = 10;

/// The incident's own failure events that evidence cites, oldest first.
pub(crate) fn own_events(input: &AnalysisInput) -> Vec<uuid::Uuid> {
    input
        .failures
        .sample_event_ids
        .iter()
        .take(MAX_EVENT_IDS)
        .copied()
        .collect()
}

/// `part / whole`, or 0 when `whole` is not positive.
pub(crate) fn share(part: i64, whole: i64) -> f64 {
    if whole > 0 {
        // Counts stay far below 2^52, where the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let r = part as f64 / whole as f64;
        r.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// `n` as a float, capped at `cap` (counts are small enough to convert exactly).
pub(crate) fn capped(n: i64, cap: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let r = n.clamp(0, cap) as f64;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hypothesis(kind: CauseKind, confidence: f64) -> Hypothesis {
        Hypothesis {
            kind,
            confidence,
            summary: String::new(),
            evidence: Vec::new(),
        }
    }

    #[test]
    fn equal_confidences_rank_by_the_fixed_kind_order_with_unknown_last() {
        let mut ranked = [
            hypothesis(CauseKind::Unknown, THRESHOLD),
            hypothesis(CauseKind::DataProblem, THRESHOLD),
            hypothesis(CauseKind::VendorOutage, 0.1),
            hypothesis(CauseKind::VendorThrottling, THRESHOLD),
        ];
        ranked.sort_by(ranking);
        let kinds: Vec<CauseKind> = ranked.iter().map(|h| h.kind).collect();
        assert_eq!(
            kinds,
            [
                CauseKind::VendorThrottling,
                CauseKind::DataProblem,
                CauseKind::Unknown,
                CauseKind::VendorOutage
            ]
        );
    }

    #[test]
    fn a_confidence_is_clamped_to_its_cap_and_rounded() {
        let s = Scored::new(
            CauseKind::DataProblem,
            1.234,
            0.9,
            String::new(),
            Vec::new(),
            String::new(),
        );
        assert!((s.hypothesis.confidence - 0.9).abs() < f64::EPSILON);
        let s = Scored::new(
            CauseKind::DataProblem,
            -0.2,
            0.9,
            String::new(),
            Vec::new(),
            String::new(),
        );
        assert!(s.hypothesis.confidence.abs() < f64::EPSILON);
        let s = Scored::new(
            CauseKind::DataProblem,
            0.456,
            0.9,
            String::new(),
            Vec::new(),
            String::new(),
        );
        assert!((s.hypothesis.confidence - 0.46).abs() < f64::EPSILON);
    }
}
