//! What the remediation modes write before they measure: incidents of one
//! tenant, each of its own workflow and with one failure, spread over a few
//! vendors; with the analyzer's `opened` decision recommending a retry
//! (`remediation`), or with a first retry already scheduled (`scheduler`).
//! Written in chunks, one multi-row statement per table and chunk.

use awfdrs_domain::decision::{
    ActionKind, Category, CauseKind, Classification, DecisionV1, Engine, Hypothesis,
    Recommendation, RootCause, RuleRef, Severity, SignatureInputs,
};
use awfdrs_store::{SeedIncidents, Store, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rules::{CODE, POLICY};

/// Rows per statement.
const CHUNK: u64 = 5_000;

/// The vendors the failures spread over.
const VENDORS: u64 = 8;

/// Incident `i` of a seed: its workflow, vendor and correlation id.
pub(super) fn workflow(i: u64) -> String {
    format!("wf-{i:07}")
}

fn vendor(i: u64) -> String {
    format!("vendor-{}", i % VENDORS)
}

fn correlation(i: u64) -> String {
    format!("bench-corr-{i:07}")
}

/// One chunk's columns: incidents `from..to`.
struct Chunk {
    ids: Vec<Uuid>,
    workflows: Vec<String>,
    vendors: Vec<String>,
    correlation_ids: Vec<String>,
}

impl Chunk {
    fn new(from: u64, to: u64) -> Self {
        Self {
            ids: (from..to).map(|_| Uuid::new_v4()).collect(),
            workflows: (from..to).map(workflow).collect(),
            vendors: (from..to).map(vendor).collect(),
            correlation_ids: (from..to).map(correlation).collect(),
        }
    }

    fn incidents(&self, at: DateTime<Utc>) -> SeedIncidents<'_> {
        SeedIncidents {
            ids: &self.ids,
            workflows: &self.workflows,
            vendors: &self.vendors,
            correlation_ids: &self.correlation_ids,
            code: CODE,
            at,
        }
    }
}

/// The analyzer's `opened` decision about incident `id` (`i`-th of the
/// seed) of `tenant`: a transient failure, retried by the bench policy.
pub(super) fn decision(tenant: (Uuid, &str), id: Uuid, i: u64, at: DateTime<Utc>) -> DecisionV1 {
    let rule = RuleRef {
        file: awfdrs_rules::ERROR_CODES_FILE.to_owned(),
        key: format!("codes.{CODE}"),
    };
    let hypothesis = Hypothesis {
        kind: CauseKind::Unknown,
        confidence: 0.5,
        summary: "a transient failure of one run".to_owned(),
        evidence: Vec::new(),
    };
    DecisionV1 {
        id: DecisionV1::id_for(id, "opened"),
        incident_id: id,
        tenant_id: tenant.0,
        tenant: tenant.1.to_owned(),
        trigger: "opened".to_owned(),
        supersedes: None,
        engine: Engine {
            name: "local".to_owned(),
            version: "bench".to_owned(),
        },
        signature_inputs: SignatureInputs {
            tenant: tenant.1.to_owned(),
            workflow_id: workflow(i),
            error_code_raw: CODE.to_owned(),
            error_code: CODE.to_owned(),
            vendor: Some(vendor(i)),
            step: Some("charge".to_owned()),
            open_after: None,
            reopen_window: RuleRef {
                file: "awfdrs.yaml".to_owned(),
                key: "detector.reopen_window_secs".to_owned(),
            },
        },
        classification: Classification {
            category: Category::Transient,
            severity: Severity::Medium,
            retryable: true,
            rule,
            description: "A transient failure of the bench, retried at once.".to_owned(),
            overrides: Vec::new(),
        },
        root_cause: RootCause {
            hypothesis: hypothesis.clone(),
            ranked: vec![hypothesis],
            rejected: None,
        },
        similar_incidents: Vec::new(),
        recommended_action: Recommendation {
            action: ActionKind::Retry,
            reason: "transient: retry by policy".to_owned(),
            policy: Some(POLICY.to_owned()),
            next_delay_ms: None,
            confidence: 0.5,
        },
        confidence: 0.5,
        correlation_id: correlation(i),
        created_at: at,
    }
}

/// Writes `n` incidents of `tenant` that are `ANALYZING`, each with its
/// decision recorded; returns the decisions, in order.
///
/// # Errors
/// On database failure.
pub(in crate::bench) async fn decided(
    store: &Store,
    tenant: (Uuid, &str),
    n: u64,
) -> Result<Vec<DecisionV1>, StoreError> {
    let at = Utc::now();
    let mut all = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for from in (0..n).step_by(usize::try_from(CHUNK).unwrap_or(1)) {
        let to = (from + CHUNK).min(n);
        let chunk = Chunk::new(from, to);
        let decisions: Vec<DecisionV1> = chunk
            .ids
            .iter()
            .zip(from..to)
            .map(|(id, i)| decision(tenant, *id, i, at))
            .collect();
        let ids: Vec<Uuid> = decisions.iter().map(|d| d.id).collect();
        let bodies: Vec<String> = decisions
            .iter()
            .map(|d| serde_json::to_string(d).unwrap_or_default())
            .collect();
        store
            .bench_seed_decided(tenant.0, chunk.incidents(at), &ids, &bodies)
            .await?;
        all.extend(decisions);
    }
    Ok(all)
}

/// Writes `n` incidents of `tenant` that are `ACTIONED`, each with its first
/// retry scheduled: retry `i` due at `base + i × over / n`.
///
/// # Errors
/// On database failure.
pub(super) async fn scheduled(
    store: &Store,
    tenant: Uuid,
    n: u64,
    base: DateTime<Utc>,
    over: std::time::Duration,
) -> Result<u64, StoreError> {
    let at = Utc::now();
    let mut written = 0;
    for from in (0..n).step_by(usize::try_from(CHUNK).unwrap_or(1)) {
        let to = (from + CHUNK).min(n);
        let chunk = Chunk::new(from, to);
        let actions: Vec<Uuid> = chunk
            .ids
            .iter()
            .map(|id| awfdrs_domain::action_id(*id, ActionKind::Retry, 1))
            .collect();
        let due: Vec<DateTime<Utc>> = (from..to).map(|i| base + offset(i, n, over)).collect();
        written += store
            .bench_seed_scheduled(tenant, chunk.incidents(at), &actions, &due)
            .await?;
    }
    Ok(written)
}

/// Retry `i` of `n` spread evenly over `over`.
fn offset(i: u64, n: u64, over: std::time::Duration) -> chrono::Duration {
    let micros = u128::from(i) * over.as_micros() / u128::from(n.max(1));
    chrono::Duration::microseconds(i64::try_from(micros).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn due_times_spread_evenly_over_the_span() {
        let over = Duration::from_secs(600);
        assert_eq!(offset(0, 100_000, over), chrono::Duration::zero());
        assert_eq!(
            offset(50_000, 100_000, over),
            chrono::Duration::seconds(300)
        );
        assert_eq!(
            offset(99_999, 100_000, over),
            chrono::Duration::microseconds(599_994_000)
        );
        assert_eq!(offset(7, 10, Duration::ZERO), chrono::Duration::zero());
    }

    #[test]
    fn a_decision_reads_back_and_recommends_the_bench_retry() {
        let id = Uuid::new_v4();
        let d = decision((Uuid::new_v4(), "bench-x"), id, 3, Utc::now());
        let back: DecisionV1 = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.id, DecisionV1::id_for(id, "opened"));
        assert_eq!(back.recommended_action.action, ActionKind::Retry);
        assert_eq!(back.signature_inputs.workflow_id, "wf-0000003");
    }
}
