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
use awfdrs_store::{Channel, GroupMember, Incident};
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

/// The most incidents a grouped body lists (its `count` says how many
/// there are).
const MAX_LISTED: usize = 100;
/// The most a Slack message lists, one line each.
const MAX_SLACK_LINES: usize = 10;

/// The incident a group starts with, as a member.
#[must_use]
pub fn member(i: &Incident) -> GroupMember {
    GroupMember {
        incident_id: i.id,
        workflow_id: i.workflow_id.clone(),
        error_code: i.error_code.clone(),
        vendor: i.vendor.clone(),
        status: i.status.as_str().to_owned(),
        first_seen: i.first_seen,
    }
}

/// The body for a notification that tells of `members` (its first
/// incident's body `lead`, for a channel of `kind`), as sent:
///
/// * `webhook`: `lead` with `group`: `{"count", "incidents": [...]}` (at
///   most 100 listed; `truncated` says whether there are more);
/// * `slack`: the `text` says how many incidents share the root cause, and
///   a `group` block lists them (at most ten lines);
/// * `pagerduty`: the summary starts with the count, and `custom_details`
///   carries `group`; a `resolve` is unchanged (one `dedup_key`, the first
///   incident's, stands for the group).
#[must_use]
pub fn grouped(kind: &str, lead: &Value, members: &[GroupMember]) -> String {
    let count = members.len();
    let listed = &members[..count.min(MAX_LISTED)];
    let group = json!({
        "count": count,
        "incidents": listed,
        "truncated": count > listed.len(),
    });
    let mut body = lead.clone();
    match kind {
        "slack" => {
            if count > 1
                && let Some(text) = body["text"].as_str()
            {
                body["text"] = json!(format!("{count} incidents, one root cause. {text}"));
            }
            let mut lines: Vec<String> = members
                .iter()
                .take(MAX_SLACK_LINES)
                .map(|m| format!("• `{}` {} ({})", m.workflow_id, m.incident_id, m.status))
                .collect();
            if count > MAX_SLACK_LINES {
                lines.push(format!("… and {} more", count - MAX_SLACK_LINES));
            }
            let block = json!({
                "type": "section",
                "block_id": "group",
                "text": {"type": "mrkdwn", "text": format!("*{count} incident(s) with this root cause:*\n{}", lines.join("\n"))},
            });
            if let Some(blocks) = body["blocks"].as_array_mut() {
                let at = blocks.len().saturating_sub(1);
                blocks.insert(at, block);
            }
        }
        "pagerduty" => {
            if body["event_action"] == "trigger" {
                if count > 1
                    && let Some(summary) = body["payload"]["summary"].as_str()
                {
                    let s: String = format!("[{count} incidents] {summary}")
                        .chars()
                        .take(MAX_SUMMARY)
                        .collect();
                    body["payload"]["summary"] = json!(s);
                }
                body["payload"]["custom_details"]["group"] = group;
            }
        }
        _ => body["group"] = group,
    }
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<GroupMember> {
        (0..n)
            .map(|i| GroupMember {
                incident_id: uuid::Uuid::now_v7(),
                workflow_id: format!("wf-{i}"),
                error_code: "service_unavailable".to_owned(),
                vendor: Some("stripe".to_owned()),
                status: "ACTIONED".to_owned(),
                first_seen: chrono::Utc::now(),
            })
            .collect()
    }

    #[test]
    fn a_grouped_webhook_lists_its_incidents_and_their_count() {
        let lead = json!({"type": "incident.escalated", "incident": {}});
        let body: Value = serde_json::from_str(&grouped("webhook", &lead, &members(120))).unwrap();
        assert_eq!(body["type"], "incident.escalated");
        assert_eq!(body["group"]["count"], 120);
        assert_eq!(body["group"]["incidents"].as_array().unwrap().len(), 100);
        assert_eq!(body["group"]["truncated"], true);
        assert_eq!(body["group"]["incidents"][3]["workflow_id"], "wf-3");
    }

    #[test]
    fn a_grouped_slack_message_says_the_count_and_lists_ten() {
        let lead =
            json!({"text": "stripe failing", "blocks": [{"type": "header"}, {"type": "context"}]});
        let body: Value = serde_json::from_str(&grouped("slack", &lead, &members(20))).unwrap();
        assert_eq!(body["text"], "20 incidents, one root cause. stripe failing");
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[1]["block_id"], "group");
        assert_eq!(blocks[2]["type"], "context");
        let text = blocks[1]["text"]["text"].as_str().unwrap();
        assert_eq!(text.lines().count(), 12, "{text}");
        assert!(text.ends_with("… and 10 more"), "{text}");
    }

    #[test]
    fn a_grouped_pagerduty_trigger_counts_in_its_summary_and_a_resolve_is_unchanged() {
        let lead = json!({"event_action": "trigger", "dedup_key": "x",
                          "payload": {"summary": "stripe failing", "custom_details": {}}});
        let body: Value = serde_json::from_str(&grouped("pagerduty", &lead, &members(3))).unwrap();
        assert_eq!(body["payload"]["summary"], "[3 incidents] stripe failing");
        assert_eq!(body["payload"]["custom_details"]["group"]["count"], 3);
        assert_eq!(body["dedup_key"], "x");
        let resolve = json!({"event_action": "resolve", "dedup_key": "x"});
        let same: Value =
            serde_json::from_str(&grouped("pagerduty", &resolve, &members(3))).unwrap();
        assert_eq!(same, resolve);
    }

    #[test]
    fn pagerduty_severities_are_its_four() {
        assert_eq!(pagerduty_severity(Severity::Critical), "critical");
        assert_eq!(pagerduty_severity(Severity::High), "error");
        assert_eq!(pagerduty_severity(Severity::Medium), "warning");
        assert_eq!(pagerduty_severity(Severity::Low), "info");
    }
}
