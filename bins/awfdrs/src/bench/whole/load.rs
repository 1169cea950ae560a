//! The loop mode's events and rules: failures spread evenly over
//! `signatures` (workflow × error code), one event in ten a success of
//! another step (so no incident resolves during the run and every signature
//! has one incident); three of the five codes retryable at once by the
//! bench policy, two permanent (escalated, so notified).

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use super::super::load::Events;
use super::super::remediation::rules::POLICY;

/// The codes, and whether each is retryable.
pub(super) const CODES: [(&str, bool); 5] = [
    ("bench_transient", true),
    ("bench_timeout", true),
    ("bench_throttled", true),
    ("bench_declined", false),
    ("bench_invalid", false),
];

/// One event in this many is a success.
const SUCCESS_ONE_IN: u64 = 10;

/// The vendors the workflows call.
const VENDORS: u64 = 8;

/// `error_codes.yaml` of the loop: the codes above, retryable ones by the
/// bench policy (due 1 ms after their decision), none a vendor's fault.
pub(super) fn error_codes() -> String {
    let mut yaml = String::from(
        "default:\n  severity: medium\n  category: permanent\n  vendor_fault: false\n  \
         retry_policy: none\n  description: Not a bench code.\ncodes:\n",
    );
    for (code, retryable) in CODES {
        let (category, policy) = if retryable {
            ("transient", POLICY)
        } else {
            ("permanent", "none")
        };
        yaml.push_str(&format!(
            "  {code}:\n    severity: medium\n    category: {category}\n    vendor_fault: false\n    \
             retry_policy: {policy}\n    description: A {category} failure of the bench.\n"
        ));
    }
    yaml
}

/// The events of a loop run.
#[derive(Debug)]
pub(super) struct LoopEvents {
    tag: String,
    signatures: u64,
}

/// What a run's events hold: failures by signature.
#[derive(Debug, Default)]
pub(super) struct Expected {
    pub failures: u64,
    pub successes: u64,
    /// Failures of each signature (workflow, code).
    pub by_signature: BTreeMap<(String, &'static str), u64>,
}

impl Expected {
    /// Signatures failed, and those of a retryable code.
    pub(super) fn incidents(&self) -> (u64, u64) {
        let retryable = self
            .by_signature
            .keys()
            .filter(|(_, code)| retryable(code))
            .count();
        (self.by_signature.len() as u64, retryable as u64)
    }
}

/// Whether `code` is one of the retryable codes.
pub(super) fn retryable(code: &str) -> bool {
    CODES.iter().any(|(c, r)| *c == code && *r)
}

enum Kind {
    Success {
        workflow: String,
    },
    Failure {
        workflow: String,
        code: &'static str,
        vendor: u64,
    },
}

impl LoopEvents {
    pub(super) fn new(tag: &str, signatures: u64) -> Self {
        Self {
            tag: tag.to_owned(),
            signatures: signatures.max(1),
        }
    }

    fn workflows(&self) -> u64 {
        self.signatures.div_ceil(CODES.len() as u64)
    }

    fn kind(&self, i: u64) -> Kind {
        if pick(i, 24, SUCCESS_ONE_IN) == 0 {
            return Kind::Success {
                workflow: workflow(pick(i, 8, self.workflows())),
            };
        }
        let k = pick(i, 8, self.signatures);
        let codes = CODES.len() as u64;
        Kind::Failure {
            workflow: workflow(k / codes),
            code: CODES[usize::try_from(k % codes).unwrap_or(0)].0,
            vendor: (k / codes) % VENDORS,
        }
    }

    /// What the first `n` events hold.
    pub(super) fn expected(&self, n: u64) -> Expected {
        let mut e = Expected::default();
        for i in 0..n {
            match self.kind(i) {
                Kind::Success { .. } => e.successes += 1,
                Kind::Failure { workflow, code, .. } => {
                    e.failures += 1;
                    *e.by_signature.entry((workflow, code)).or_default() += 1;
                }
            }
        }
        e
    }
}

impl Events for LoopEvents {
    fn workflow(&self, i: u64) -> Cow<'_, str> {
        match self.kind(i) {
            Kind::Success { workflow } | Kind::Failure { workflow, .. } => workflow.into(),
        }
    }

    fn key(&self, i: u64) -> String {
        format!("{}-{i:010}", self.tag)
    }

    fn body(&self, i: u64, at: DateTime<Utc>) -> String {
        let key = self.key(i);
        let at = at.to_rfc3339_opts(SecondsFormat::Micros, true);
        let run = format!("run-{i:010}");
        let event = match self.kind(i) {
            Kind::Success { workflow } => serde_json::json!({
                "idempotency_key": key, "workflow_id": workflow, "event_type": "step_succeeded",
                "occurred_at": at, "workflow_run_id": run, "step": "confirm", "attempt": 1,
            }),
            Kind::Failure {
                workflow,
                code,
                vendor,
            } => serde_json::json!({
                "idempotency_key": key, "workflow_id": workflow, "event_type": "step_failed",
                "occurred_at": at, "workflow_run_id": run, "step": "charge",
                "vendor": format!("vendor-{vendor}"), "attempt": 1,
                "error": {"code": code, "http_status": 502, "retryable": retryable(code),
                          "message": "the vendor call failed"},
            }),
        };
        event.to_string()
    }
}

fn workflow(k: u64) -> String {
    format!("wf-{k:05}")
}

/// A well-spread choice among `n` for event `i`.
fn pick(i: u64, shift: u32, n: u64) -> u64 {
    let h = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> shift) % n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_valid_and_spread_over_the_signatures() {
        let events = LoopEvents::new("bench-loop", 1000);
        let now = Utc::now();
        for i in 0..500 {
            let body = events.body(i, now);
            let value: serde_json::Value = serde_json::from_str(&body).expect("json");
            let valid = awfdrs_domain::parse_event(&value, now).expect("valid event");
            assert_eq!(valid.event.workflow_id, events.workflow(i));
        }
        let e = events.expected(20_000);
        assert_eq!(e.failures + e.successes, 20_000);
        assert!((17_600..18_400).contains(&e.failures), "{}", e.failures);
        let (incidents, retryable) = e.incidents();
        assert_eq!(incidents, 1000);
        assert_eq!(retryable, 600);
    }

    #[test]
    fn the_rules_load_with_retryable_and_permanent_codes() {
        let rules = super::super::super::remediation::rules::BenchRules::write_codes(
            &format!("looptest{}", std::process::id()),
            &error_codes(),
        )
        .expect("written");
        let loaded = awfdrs_rules::Rules::load(rules.dir()).expect("the loop rules load");
        for (code, retryable) in CODES {
            assert_eq!(loaded.retry_policy_for(code).is_some(), retryable, "{code}");
        }
    }
}
