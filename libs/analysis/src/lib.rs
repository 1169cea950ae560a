//! The analysis engine: from the facts about one incident to a decision a
//! person can check, offline and deterministic (the same input gives a
//! byte-identical decision).
//!
//! [`Analyst`] is what the analyzer worker calls; [`LocalAnalyst`], the
//! default, classifies the failure from the rules and the failures' own
//! signals ([`classify`]), ranks root-cause hypotheses by their evidence
//! ([`cause`]), ranks the tenant's similar past incidents ([`similar`]), and
//! recommends an action ([`recommend`]); [`explain`] renders a decision as
//! text. A backend that calls a language model could implement the same
//! trait; no network call is made unless one is configured, and every
//! decision names the engine and version that made it.
//!
//! This crate must not do I/O, read the clock, draw random numbers or let
//! a map's iteration order reach its output: every input, the decision's
//! time included, is in [`AnalysisInput`].

pub mod cause;
pub mod classify;
pub mod explain;
pub mod input;
pub mod lsh;
pub mod names;
pub mod recommend;
pub mod similar;

pub use input::{
    AnalysisInput, BreakerFacts, FailureSignals, IncidentFacts, PastIncident, ReleaseFacts,
    StatusCount, StepHistory, Trigger, VendorFacts,
};

use awfdrs_domain::decision::{DecisionV1, Engine};

/// Makes decisions.
pub trait Analyst: Send + Sync + 'static {
    /// The engine's name and version, recorded on every decision.
    fn engine(&self) -> awfdrs_domain::decision::Engine;

    /// The decision about `input`.
    fn analyze(&self, input: &AnalysisInput) -> DecisionV1;
}

/// The local engine's name, as decisions record it.
pub const LOCAL_ENGINE: &str = "local";

/// The local engine's version: raised whenever a change to its rules can
/// change a decision, so a decision can be traced to the logic that made it.
pub const LOCAL_ENGINE_VERSION: &str = "1.0.0";

/// The default engine: deterministic rules over the input's facts, offline.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalAnalyst;

impl LocalAnalyst {
    /// The local engine.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

impl Analyst for LocalAnalyst {
    fn engine(&self) -> Engine {
        Engine {
            name: LOCAL_ENGINE.to_owned(),
            version: LOCAL_ENGINE_VERSION.to_owned(),
        }
    }

    fn analyze(&self, input: &AnalysisInput) -> DecisionV1 {
        let classification = classify::classify(input);
        let root_cause = cause::diagnose(input, &classification);
        let similar_incidents = similar::rank(input);
        let recommended_action = recommend::recommend(input, &classification, &root_cause);
        let incident = &input.incident;
        let trigger = input.trigger.key();
        DecisionV1 {
            id: DecisionV1::id_for(incident.id, &trigger),
            incident_id: incident.id,
            tenant_id: incident.tenant_id,
            tenant: incident.inputs.tenant.clone(),
            trigger,
            supersedes: input.supersedes,
            engine: self.engine(),
            signature_inputs: incident.inputs.clone(),
            confidence: root_cause.hypothesis.confidence,
            classification,
            root_cause,
            similar_incidents,
            recommended_action,
            correlation_id: incident.correlation_id.clone(),
            created_at: input.at,
        }
    }
}
