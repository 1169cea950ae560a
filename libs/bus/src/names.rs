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

/// One of a namespace's streams, named for the subjects it captures
/// (`<NS>_<TOKEN>` holds `<ns>.<token>.>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `<ns>.events.<tenant>.<workflow>`: producers' workflow events.
    Events,
    /// `<ns>.incidents.<tenant>.opened|reopened`: the detector's incidents.
    Incidents,
    /// `<ns>.decisions.<tenant>`: the analyzer's decisions.
    Decisions,
    /// `<ns>.escalations.<tenant>`: the coordinator's escalations.
    Escalations,
    /// `<ns>.commands.<tenant>.<workflow>.retry`: the scheduler's retries.
    Commands,
    /// `<ns>.dlq.<stage>`: dead-letter notifications.
    Dlq,
}

impl Topic {
    /// Every stream of a namespace.
    pub const ALL: [Self; 6] = [
        Self::Events,
        Self::Incidents,
        Self::Decisions,
        Self::Escalations,
        Self::Commands,
        Self::Dlq,
    ];

    /// The second token of the topic's subjects.
    pub const fn token(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Incidents => "incidents",
            Self::Decisions => "decisions",
            Self::Escalations => "escalations",
            Self::Commands => "commands",
            Self::Dlq => "dlq",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// A pipeline stage: it names its consumer and its dead-letter subject,
/// and says which stream it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Detector,
    Analyzer,
    Coordinator,
    /// Fires due retries from the database; it reads no stream.
    Scheduler,
    Notifier,
}

/// Where a stage reads: its durable consumer on a stream, and the subjects
/// it takes from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub stream: String,
    pub filter: String,
    /// The durable consumer's name.
    pub consumer: String,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Self; 5] = [
        Self::Detector,
        Self::Analyzer,
        Self::Coordinator,
        Self::Scheduler,
        Self::Notifier,
    ];

    /// The pipeline in one table: each stage's name and the topic it reads.
    const fn row(self) -> (&'static str, Option<Topic>) {
        match self {
            Self::Detector => ("detector", Some(Topic::Events)),
            Self::Analyzer => ("analyzer", Some(Topic::Incidents)),
            Self::Coordinator => ("coordinator", Some(Topic::Decisions)),
            Self::Scheduler => ("scheduler", None),
            Self::Notifier => ("notifier", Some(Topic::Escalations)),
        }
    }

    /// The stage's name in subjects and consumer names.
    pub const fn as_str(self) -> &'static str {
        self.row().0
    }

    /// The topic the stage reads, if it reads one.
    pub const fn reads(self) -> Option<Topic> {
        self.row().1
    }

    /// The stream the stage reads in `ns`, every subject of it, and the
    /// stage's durable consumer `<ns>_<stage>`; `None` for a stage that
    /// reads no stream.
    pub fn source(self, ns: &Namespace) -> Option<Source> {
        let topic = self.reads()?;
        Some(Source {
            stream: ns.stream(topic),
            filter: ns.subjects(topic),
            consumer: format!("{ns}_{self}"),
        })
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

    /// `<ns>.incidents.<tenant>.reopened`.
    pub fn incident_reopened(&self, tenant: &str) -> String {
        format!("{}.incidents.{tenant}.reopened", self.0)
    }

    /// `<ns>.incidents.<tenant>.retry_failed`: an incident whose retry a
    /// later failure of the same run failed.
    pub fn incident_retry_failed(&self, tenant: &str) -> String {
        format!("{}.incidents.{tenant}.retry_failed", self.0)
    }

    /// `<ns>.decisions.<tenant>`: where the analyzer publishes decisions.
    pub fn decisions(&self, tenant: &str) -> String {
        format!("{}.decisions.{tenant}", self.0)
    }

    /// `<ns>.escalations.<tenant>`: where the coordinator publishes
    /// escalations.
    pub fn escalations(&self, tenant: &str) -> String {
        format!("{}.escalations.{tenant}", self.0)
    }

    /// `<ns>.commands.<tenant>.<workflow>.retry`: where the scheduler
    /// publishes a retry for a producer's workflow engine.
    pub fn retry_command(&self, tenant: &str, workflow: &str) -> String {
        format!("{}.commands.{tenant}.{workflow}.retry", self.0)
    }

    /// `<ns>.dlq.<stage>`.
    pub fn dlq(&self, stage: Stage) -> String {
        format!("{}.dlq.{stage}", self.0)
    }

    /// `<NS>_<TOKEN>`: the stream of `topic`.
    pub fn stream(&self, topic: Topic) -> String {
        format!("{}_{}", self.0.to_uppercase(), topic.token().to_uppercase())
    }

    /// `<ns>.<token>.>`: every subject of `topic`.
    pub fn subjects(&self, topic: Topic) -> String {
        format!("{}.{topic}.>", self.0)
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

    fn ns() -> Namespace {
        Namespace::new("awfdrs").expect("valid")
    }

    #[test]
    fn remediation_subjects_follow_the_contract() {
        let ns = ns();
        assert_eq!(ns.incident_opened("acme"), "awfdrs.incidents.acme.opened");
        assert_eq!(
            ns.incident_reopened("acme"),
            "awfdrs.incidents.acme.reopened"
        );
        assert_eq!(ns.decisions("acme"), "awfdrs.decisions.acme");
        assert_eq!(ns.escalations("acme"), "awfdrs.escalations.acme");
        assert_eq!(
            ns.retry_command("acme", "checkout"),
            "awfdrs.commands.acme.checkout.retry"
        );
        assert_eq!(ns.dlq(Stage::Notifier), "awfdrs.dlq.notifier");
    }

    #[test]
    fn each_stream_captures_its_topic_subjects() {
        let ns = ns();
        let names: Vec<(String, String)> = Topic::ALL
            .iter()
            .map(|&t| (ns.stream(t), ns.subjects(t)))
            .collect();
        let expected = [
            ("AWFDRS_EVENTS", "awfdrs.events.>"),
            ("AWFDRS_INCIDENTS", "awfdrs.incidents.>"),
            ("AWFDRS_DECISIONS", "awfdrs.decisions.>"),
            ("AWFDRS_ESCALATIONS", "awfdrs.escalations.>"),
            ("AWFDRS_COMMANDS", "awfdrs.commands.>"),
            ("AWFDRS_DLQ", "awfdrs.dlq.>"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(s, f)| ((*s).to_owned(), (*f).to_owned()))
            .collect();
        assert_eq!(names, expected);
        let subject_of = |t: Topic| match t {
            Topic::Events => ns.events_subject("acme", "checkout"),
            Topic::Incidents => ns.incident_reopened("acme"),
            Topic::Decisions => ns.decisions("acme"),
            Topic::Escalations => ns.escalations("acme"),
            Topic::Commands => ns.retry_command("acme", "checkout"),
            Topic::Dlq => ns.dlq(Stage::Detector),
        };
        for t in Topic::ALL {
            let prefix = ns.subjects(t);
            let prefix = prefix.trim_end_matches('>');
            assert!(subject_of(t).starts_with(prefix), "{t}");
        }
    }

    #[test]
    fn each_stage_reads_what_the_one_before_it_publishes() {
        let ns = ns();
        let source = |s: Stage| s.source(&ns).map(|s| (s.stream, s.filter, s.consumer));
        assert_eq!(
            source(Stage::Detector),
            Some((
                "AWFDRS_EVENTS".into(),
                "awfdrs.events.>".into(),
                "awfdrs_detector".into()
            ))
        );
        assert_eq!(
            source(Stage::Analyzer),
            Some((
                "AWFDRS_INCIDENTS".into(),
                "awfdrs.incidents.>".into(),
                "awfdrs_analyzer".into()
            ))
        );
        assert_eq!(
            source(Stage::Coordinator),
            Some((
                "AWFDRS_DECISIONS".into(),
                "awfdrs.decisions.>".into(),
                "awfdrs_coordinator".into()
            ))
        );
        assert_eq!(source(Stage::Scheduler), None);
        assert_eq!(
            source(Stage::Notifier),
            Some((
                "AWFDRS_ESCALATIONS".into(),
                "awfdrs.escalations.>".into(),
                "awfdrs_notifier".into()
            ))
        );
    }

    #[test]
    fn stage_names_are_distinct_tokens() {
        let names: std::collections::HashSet<&str> =
            Stage::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), Stage::ALL.len());
        assert!(names.iter().all(|n| is_slug(n) && !n.contains('.')));
    }
}
