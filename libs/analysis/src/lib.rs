//! The analysis engine: from the facts about one incident to a decision a
//! person can check, offline and deterministic (the same input gives a
//! byte-identical decision).
//!
//! [`Analyst`] is what the analyzer worker calls; [`LocalAnalyst`], the
//! default, classifies the failure from the rules and the failures' own
//! signals, ranks root-cause hypotheses by their evidence, ranks the
//! tenant's similar past incidents, and recommends an action. A backend
//! that calls a language model could implement the same trait; no network
//! call is made unless one is configured, and every decision names the
//! engine and version that made it.

pub mod input;
pub mod lsh;

pub use input::{
    AnalysisInput, BreakerFacts, FailureSignals, IncidentFacts, PastIncident, ReleaseFacts,
    StatusCount, StepHistory, Trigger, VendorFacts,
};

use awfdrs_domain::decision::DecisionV1;

/// Makes decisions.
pub trait Analyst: Send + Sync + 'static {
    /// The engine's name and version, recorded on every decision.
    fn engine(&self) -> awfdrs_domain::decision::Engine;

    /// The decision about `input`.
    fn analyze(&self, input: &AnalysisInput) -> DecisionV1;
}
