//! From what the store knows about an incident to the engine's input: the
//! rules' classification of its code, the vendor's breaker from the
//! process's watched view, and the similar-incident candidates.

use std::collections::BTreeMap;

use awfdrs_analysis::{AnalysisInput, BreakerFacts, PastIncident, Trigger};
use awfdrs_domain::decision::RuleRef;
use awfdrs_runtime::Context;
use awfdrs_store::{AnalysisFacts, FactWindows, PastIncidentRow, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What gathering the facts found.
pub(crate) enum Gathered {
    /// The input, and the new incident's message vector and its LSH keys.
    Input(Box<AnalysisInput>, Vec<f32>, Vec<i32>),
    /// There is no such incident (of that tenant).
    Missing,
}

/// The windows the configuration sets.
pub(crate) fn windows(ctx: &Context) -> FactWindows {
    let a = &ctx.config.analyzer;
    FactWindows {
        vendor_secs: a.vendor_window_secs,
        lookback_secs: a.lookback_secs,
        candidates: a.similar_candidates,
    }
}

/// Everything the analysis of `incident` for `trigger` at `at` reads.
pub(crate) async fn gather(
    ctx: &Context,
    tenant: Uuid,
    incident: Uuid,
    trigger: Trigger,
    at: DateTime<Utc>,
) -> Result<Gathered, StoreError> {
    let Some(facts) = ctx
        .store
        .analysis_facts(Some(tenant), incident, windows(ctx))
        .await?
    else {
        return Ok(Gathered::Missing);
    };
    let AnalysisFacts {
        incident: facts_incident,
        failures,
        step,
        mut vendor,
        past,
        ..
    } = facts;
    let vector = awfdrs_analysis::similar::vector(facts_incident.message.as_deref().unwrap_or(""));
    let keys = awfdrs_analysis::lsh::keys(tenant, &vector);
    let rules = ctx.rules.current();
    let mut candidates: BTreeMap<Uuid, PastIncidentRow> =
        past.into_iter().map(|p| (p.id, p)).collect();
    // Similar messages rank after the same signature and the same vendor
    // and category: when those already fill the list, no message search.
    let category = rules.error_code(&facts_incident.inputs.error_code).category;
    let better = candidates
        .values()
        .filter(|p| {
            p.signature == facts_incident.signature
                || (p.vendor.is_some()
                    && p.vendor == facts_incident.inputs.vendor
                    && rules.error_code(&p.error_code).category == category)
        })
        .count();
    if !keys.is_empty() && better < awfdrs_analysis::similar::LIMIT {
        let alike = ctx
            .store
            .similar_candidates(
                tenant,
                incident,
                &keys,
                ctx.config.analyzer.similar_candidates,
            )
            .await?;
        candidates.extend(alike.into_iter().map(|p| (p.id, p)));
    }
    let code = &facts_incident.inputs.error_code;
    let rule = rules.error_code(code).clone();
    let rule_ref = RuleRef {
        file: "error_codes.yaml".to_owned(),
        key: if rules.known_error_code(code).is_some() {
            format!("codes.{code}")
        } else {
            "default".to_owned()
        },
    };
    let policy = rules
        .retry_policy_for(code)
        .map(|(name, p)| (name.to_owned(), p.clone()));
    if let Some(v) = vendor.as_mut() {
        let b = ctx.breakers.get(&v.vendor, awfdrs_guard::now());
        v.breaker = Some(BreakerFacts {
            state: b.state.as_str().to_owned(),
            failure_rate: b.failure_rate,
            opened_at: b.opened_at,
        });
    }
    let auto_resolve = i64::from(ctx.config.detector.auto_resolve_successes);
    let past = candidates
        .into_values()
        .map(|p| PastIncident {
            category: rules.error_code(&p.error_code).category,
            vector: p.message_vector.unwrap_or_default(),
            resolved_after_successes: (p.resolved_by.as_deref() == Some("auto-resolve"))
                .then_some(auto_resolve),
            resolved_by_retry: p.resolved_by_retry.and_then(|n| u32::try_from(n).ok()),
            id: p.id,
            signature: p.signature,
            workflow_id: p.workflow_id,
            error_code: p.error_code,
            vendor: p.vendor,
            message: None,
            status: p.status,
            first_seen: p.first_seen,
            resolved_at: p.resolved_at,
            resolved_by: p.resolved_by,
        })
        .collect();
    let supersedes = ctx.store.latest_decision(tenant, incident).await?;
    let input = AnalysisInput {
        incident: facts_incident,
        trigger,
        supersedes,
        rule,
        rule_ref,
        policy,
        failures,
        step,
        vendor,
        past,
        at,
    };
    Ok(Gathered::Input(Box::new(input), vector, keys))
}
