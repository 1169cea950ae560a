//! Typed names: every subject, stream, consumer and bucket name comes from
//! here, so a typo is a compile error rather than a silent mis-route.

use std::fmt;

use awfdrs_domain::is_slug;

/// A deployment's namespace: the first token of every subject and the
/// prefix of every stream, consumer and KV bucket name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

/// KV bucket of the circuit breakers (`<ns>_breakers`): key = vendor slug,
/// value = the breaker as JSON.
pub const BREAKERS_BUCKET: &str = "breakers";

/// KV bucket of the GCRA rate limits (`<ns>_ratelimits`).
pub const RATELIMITS_BUCKET: &str = "ratelimits";

/// A pipeline stage, which names its consumer and its dead-letter subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Detector,
}

impl Stage {
    /// The stage's name in subjects and consumer names.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Detector => "detector",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Namespace {
    /// A namespace; it must be a slug without `-` (stream names).
    ///
    /// # Errors
    /// When it is not.
    pub fn new(ns: impl Into<String>) -> Result<Self, String> {
        let ns = ns.into();
        if is_slug(&ns) && !ns.contains('-') {
            Ok(Self(ns))
        } else {
            Err(format!(
                "namespace {ns:?} must match [a-z0-9][a-z0-9_]{{0,62}}"
            ))
        }
    }

    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<ns>.events.<tenant>.<workflow>`: where producers publish events.
    pub fn events_subject(&self, tenant: &str, workflow: &str) -> String {
        format!("{}.events.{tenant}.{workflow}", self.0)
    }

    /// `<ns>.events.>`: every event.
    pub fn events_all(&self) -> String {
        format!("{}.events.>", self.0)
    }

    /// Splits an events subject into (tenant, workflow).
    pub fn parse_events_subject<'a>(&self, subject: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = subject
            .strip_prefix(self.0.as_str())?
            .strip_prefix(".events.")?;
        let (tenant, workflow) = rest.split_once('.')?;
        (!workflow.contains('.')).then_some((tenant, workflow))
    }

    /// `<ns>.incidents.<tenant>.opened`.
    pub fn incident_opened(&self, tenant: &str) -> String {
        format!("{}.incidents.{tenant}.opened", self.0)
    }

    /// `<ns>.incidents.>`.
    pub fn incidents_all(&self) -> String {
        format!("{}.incidents.>", self.0)
    }

    /// `<ns>.dlq.<stage>`.
    pub fn dlq(&self, stage: Stage) -> String {
        format!("{}.dlq.{stage}", self.0)
    }

    /// `<ns>.dlq.>`.
    pub fn dlq_all(&self) -> String {
        format!("{}.dlq.>", self.0)
    }

    /// The events stream.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.0.to_uppercase())
    }

    /// The incidents stream.
    pub fn incidents_stream(&self) -> String {
        format!("{}_INCIDENTS", self.0.to_uppercase())
    }

    /// The dead-letter stream.
    pub fn dlq_stream(&self) -> String {
        format!("{}_DLQ", self.0.to_uppercase())
    }

    /// The durable consumer of a stage.
    pub fn consumer(&self, stage: Stage) -> String {
        format!("{}_{stage}", self.0)
    }

    /// The stream a stage consumes, and the subjects it takes from it: the
    /// one place that says where each stage reads.
    pub fn source(&self, stage: Stage) -> (String, String) {
        match stage {
            Stage::Detector => (self.events_stream(), self.events_all()),
        }
    }

    /// A KV bucket of this namespace.
    pub fn bucket(&self, name: &str) -> String {
        format!("{}_{name}", self.0)
    }

    /// Message id of an incident's `opened` message.
    pub fn incident_opened_msg_id(incident: &str) -> String {
        format!("incident-opened:{incident}")
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_subjects_round_trip() {
        let ns = Namespace::new("awfdrs").expect("valid");
        let s = ns.events_subject("acme", "checkout");
        assert_eq!(s, "awfdrs.events.acme.checkout");
        assert_eq!(ns.parse_events_subject(&s), Some(("acme", "checkout")));
        assert_eq!(ns.parse_events_subject("awfdrs.events.acme"), None);
        assert_eq!(ns.parse_events_subject("other.events.a.b"), None);
        assert_eq!(ns.parse_events_subject("awfdrs.events.a.b.c"), None);
    }

    #[test]
    fn namespaces_must_be_token_safe() {
        assert!(Namespace::new("t_1").is_ok());
        assert!(Namespace::new("a.b").is_err());
        assert!(Namespace::new("a-b").is_err());
        assert!(Namespace::new("").is_err());
    }
}
