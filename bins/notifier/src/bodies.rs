//! What each channel kind is sent, as JSON.
//!
//! * `webhook`: `{"type", "incident": {...}, "decision": {...}, "level",
//!   "reason"}`, the incident and its decision as the API shows them.
//! * `slack`: an incoming-webhook body, `text` (the fallback line) and
//!   `blocks`: the incident, the root cause in one line, the
//!   recommendation, and where to see it.
//! * `pagerduty`: an Events API v2 body, `routing_key`, `event_action`
//!   `trigger`, `dedup_key` = the incident id, and `payload` with
//!   `summary`, `source`, `severity` (`critical`, `error`, `warning`,
//!   `info`) and `custom_details`; for `incident.resolved`, `event_action`
//!   `resolve` with the same `dedup_key` and no payload.

use awfdrs_domain::decision::{DecisionV1, Severity};
use awfdrs_store::{Channel, Incident};
use serde_json::{Value, json};

/// The longest PagerDuty summary, in characters (the Events API's limit).
const MAX_SUMMARY: usize = 1024;

/// What a notification tells.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// `incident.escalated` or `incident.resolved`.
    pub kind: &'a str,
    pub incident: &'a Incident,
    pub decision: &'a DecisionV1,
    pub level: i32,
    /// Why it was escalated.
    pub reason: &'a str,
}

/// The body `channel` is sent for `f`.
#[must_use]
pub fn body(channel: &Channel, f: &Facts<'_>) -> Value {
    match channel.kind.as_str() {
        "slack" => slack(f),
        "pagerduty" => pagerduty(channel.routing_key.as_deref().unwrap_or_default(), f),
        _ => webhook(f),
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// PagerDuty's severity for ours.
#[must_use]
pub fn pagerduty_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "info",
    }
}

/// The root cause in one line.
fn root_cause(d: &DecisionV1) -> String {
    let line = d.root_cause.hypothesis.summary.replace(['\r', '\n'], " ");
    line.trim().to_owned()
}

/// Whether `f` tells of a resolution.
fn resolved(f: &Facts<'_>) -> bool {
    f.kind == "incident.resolved"
}

/// The one-line summary of the incident.
fn summary(f: &Facts<'_>) -> String {
    let i = f.incident;
    let vendor = i
        .vendor
        .as_deref()
        .map(|v| format!(" ({v})"))
        .unwrap_or_default();
    format!(
        "[{}] {} {}: workflow {} failed with {}{vendor}: {}",
        severity_name(f.decision.classification.severity),
        i.id,
        if resolved(f) { "resolved" } else { "escalated" },
        i.workflow_id,
        i.error_code,
        root_cause(f.decision),
    )
}

fn webhook(f: &Facts<'_>) -> Value {
    json!({
        "type": f.kind,
        "incident": f.incident,
        "decision": f.decision,
        "level": f.level,
        "reason": f.reason,
    })
}

fn slack(f: &Facts<'_>) -> Value {
    let i = f.incident;
    let d = f.decision;
    let field =
        |label: &str, value: &str| json!({"type": "mrkdwn", "text": format!("*{label}*\n{value}")});
    json!({
        "text": summary(f),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": format!("Incident {}: {}", if resolved(f) { "resolved" } else { "escalated" }, i.workflow_id)}},
            {"type": "section", "fields": [
                field("Incident", &i.id.to_string()),
                field("Severity", severity_name(d.classification.severity)),
                field("Error code", &i.error_code),
                field("Vendor", i.vendor.as_deref().unwrap_or("none")),
            ]},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*Root cause:* {}", root_cause(d))}},
            {"type": "section", "text": {"type": "mrkdwn", "text": if resolved(f) { format!("*Resolved:* {}", f.reason) } else { format!("*Recommendation:* {} — {}", d.recommended_action.action.as_str(), f.reason) }}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("Level {} · `GET /api/v1/incidents/{}`", f.level, i.id)},
            ]},
        ],
    })
}

fn pagerduty(routing_key: &str, f: &Facts<'_>) -> Value {
    let i = f.incident;
    let d = f.decision;
    if resolved(f) {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": i.id.to_string(),
        });
    }
    let summary: String = summary(f).chars().take(MAX_SUMMARY).collect();
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": i.id.to_string(),
        "payload": {
            "summary": summary,
            "source": format!("awfdrs/{}", i.workflow_id),
            "severity": pagerduty_severity(d.classification.severity),
            "component": i.vendor,
            "group": i.workflow_id,
            "class": i.error_code,
            "custom_details": {
                "incident_id": i.id,
                "decision_id": d.id,
                "workflow_id": i.workflow_id,
                "error_code": i.error_code,
                "vendor": i.vendor,
                "root_cause": root_cause(d),
                "recommendation": d.recommended_action.action.as_str(),
                "reason": f.reason,
                "level": f.level,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagerduty_severities_are_its_four() {
        assert_eq!(pagerduty_severity(Severity::Critical), "critical");
        assert_eq!(pagerduty_severity(Severity::High), "error");
        assert_eq!(pagerduty_severity(Severity::Medium), "warning");
        assert_eq!(pagerduty_severity(Severity::Low), "info");
    }
}
