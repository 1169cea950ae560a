//! The events of the load: one size, unique keys, failures spread over the
//! workflows times the error codes, one in ten a success.

use chrono::{DateTime, SecondsFormat, Utc};

/// The workflows (and the vendor each calls); failures spread over these
/// times the error codes.
const WORKFLOWS: [(&str, &str); 10] = [
    ("checkout", "stripe"),
    ("payouts", "adyen"),
    ("onboarding", "twilio"),
    ("refunds", "stripe"),
    ("invoicing", "quickbooks"),
    ("kyc", "onfido"),
    ("shipping", "shippo"),
    ("billing", "chargebee"),
    ("signup", "sendgrid"),
    ("renewals", "paypal"),
];
/// One event in this many is a success of the same step.
const SUCCESS_ONE_IN: u64 = 10;

/// The number of workflows the load spreads over.
pub const WORKFLOW_COUNT: usize = WORKFLOWS.len();
/// The share of successes, in percent.
pub const SUCCESS_PERCENT: u64 = 100 / SUCCESS_ONE_IN;

/// Makes the `i`-th event of a mode: unique key, fixed size.
#[derive(Debug)]
pub struct EventGen {
    tag: String,
    bytes: usize,
    pad: String,
    codes: Vec<String>,
}

impl EventGen {
    /// Events whose keys start with `tag`, failing with one of `codes`,
    /// padded to `bytes` when they are shorter.
    pub fn new(tag: &str, bytes: usize, codes: &[String]) -> Self {
        Self {
            tag: tag.to_owned(),
            bytes,
            pad: "x".repeat(bytes),
            codes: if codes.is_empty() {
                vec!["vendor_5xx".to_owned()]
            } else {
                codes.to_vec()
            },
        }
    }

    /// The workflow of event `i` (it is in the subject).
    pub fn workflow(&self, i: u64) -> &'static str {
        WORKFLOWS[pick(i, 8, WORKFLOWS.len())].0
    }

    /// The idempotency key of event `i`.
    pub fn key(&self, i: u64) -> String {
        format!("{}-{i:010}", self.tag)
    }

    /// The JSON body of event `i`, which happened (and is sent) at `at`.
    pub fn body(&self, i: u64, at: DateTime<Utc>) -> String {
        let (workflow, vendor) = WORKFLOWS[pick(i, 8, WORKFLOWS.len())];
        let at = at.to_rfc3339_opts(SecondsFormat::Micros, true);
        let success = pick(i, 24, SUCCESS_ONE_IN as usize) == 0;
        let mut body = if success {
            format!(
                r#"{{"idempotency_key":"{}-{i:010}","workflow_id":"{workflow}","event_type":"step_succeeded","occurred_at":"{at}","workflow_run_id":"run-{i:010}","step":"charge","vendor":"{vendor}","attempt":1,"metadata":{{"note":""#,
                self.tag
            )
        } else {
            let code = &self.codes[pick(i, 16, self.codes.len())];
            format!(
                r#"{{"idempotency_key":"{}-{i:010}","workflow_id":"{workflow}","event_type":"step_failed","occurred_at":"{at}","workflow_run_id":"run-{i:010}","step":"charge","vendor":"{vendor}","attempt":1,"error":{{"code":"{code}","http_status":504,"retryable":true,"message":""#,
                self.tag
            )
        };
        const TAIL: &str = r#""}}"#;
        let pad = self.bytes.saturating_sub(body.len() + TAIL.len());
        body.push_str(&self.pad[..pad.min(self.pad.len())]);
        body.push_str(TAIL);
        body
    }
}

/// A well-spread choice among `n` for event `i`.
fn pick(i: u64, shift: u32, n: usize) -> usize {
    let h = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> shift) % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_the_requested_size_and_are_valid() {
        let codes: Vec<String> = ["a_1", "b_2", "c_3", "d_4", "e_5"].map(String::from).into();
        let events = EventGen::new("bench-t", 512, &codes);
        let now = Utc::now();
        let mut failures = 0;
        let mut signatures = std::collections::HashSet::new();
        for i in 0..2000 {
            let body = events.body(i, now);
            assert_eq!(body.len(), 512, "{body}");
            let value: serde_json::Value = serde_json::from_str(&body).expect("json");
            let valid = awfdrs_domain::parse_event(&value, now).expect("valid event");
            assert_eq!(valid.event.workflow_id, events.workflow(i));
            if let Some(e) = valid.event.error {
                failures += 1;
                signatures.insert((valid.event.workflow_id, e.code));
            }
        }
        assert_eq!(signatures.len(), WORKFLOW_COUNT * codes.len());
        assert!((1700..1900).contains(&failures), "{failures} failures");
    }
}
