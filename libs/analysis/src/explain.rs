//! The text `awfdrs incidents explain` prints for a decision: why the
//! failures were grouped, how they were classified and by which rule, the
//! root cause with its evidence and the alternative it beat, the similar
//! incidents with how they ended, and the recommendation. A function of the
//! decision alone, so the same decision always reads the same.

use std::fmt::Write;

use awfdrs_domain::decision::{
    Classification, DecisionV1, Evidence, Recommendation, RootCause, RuleRef, SignatureInputs,
    SimilarIncident,
};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::names;

/// `decision` as text a person reads, lines ending in `\n`.
#[must_use]
pub fn render(decision: &DecisionV1) -> String {
    let mut out = String::new();
    header(&mut out, decision);
    grouping(&mut out, &decision.signature_inputs);
    classification(&mut out, &decision.classification);
    root_cause(&mut out, &decision.root_cause);
    similar(&mut out, &decision.similar_incidents);
    recommendation(&mut out, &decision.recommended_action);
    out
}

/// Which decision, about what, made when and by which engine.
fn header(out: &mut String, d: &DecisionV1) {
    line(
        out,
        0,
        &format!("Decision {} for incident {}", d.id, d.incident_id),
    );
    field(out, "tenant", &d.tenant);
    field(out, "trigger", &d.trigger);
    if let Some(previous) = d.supersedes {
        field(out, "supersedes", &previous.to_string());
    }
    field(
        out,
        "engine",
        &format!("{} {}", d.engine.name, d.engine.version),
    );
    field(out, "made at", &time(d.created_at));
    field(out, "correlation", &d.correlation_id);
    field(out, "confidence", &format!("{:.2}", d.confidence));
}

/// What the signature is made of and the rules that shaped the opening.
fn grouping(out: &mut String, s: &SignatureInputs) {
    section(out, "Why grouped");
    field(out, "workflow", &s.workflow_id);
    field(
        out,
        "error code",
        &format!("{:?} normalised to {}", s.error_code_raw, s.error_code),
    );
    field(out, "vendor", or_none(s.vendor.as_deref()));
    field(out, "step", or_none(s.step.as_deref()));
    let opened = s
        .open_after
        .as_ref()
        .map_or_else(|| "the first failure (no open_after rule)".to_owned(), rule);
    field(out, "opened after", &opened);
    field(out, "re-open window", &rule(&s.reopen_window));
}

/// Category, severity, retryable, the rule, and the overrides in order.
fn classification(out: &mut String, c: &Classification) {
    section(out, "Classification");
    field(
        out,
        "class",
        &format!(
            "{}, severity {}, {}",
            names::category(c.category),
            names::severity(c.severity),
            if c.retryable {
                "retryable"
            } else {
                "not retryable"
            }
        ),
    );
    field(out, "rule", &rule(&c.rule));
    if !c.description.is_empty() {
        field(out, "meaning", &c.description);
    }
    if c.overrides.is_empty() {
        field(out, "overrides", "none");
    } else {
        field(out, "overrides", "");
        for o in &c.overrides {
            line(out, 4, &format!("{} = {}: {}", o.signal, o.value, o.effect));
        }
    }
}

/// The chosen cause with its evidence, the rejected one, and the ranking.
fn root_cause(out: &mut String, r: &RootCause) {
    let h = &r.hypothesis;
    section(
        out,
        &format!(
            "Root cause: {} (confidence {:.2})",
            names::cause(h.kind),
            h.confidence
        ),
    );
    field(out, "summary", &h.summary);
    field(out, "evidence", "");
    for e in &h.evidence {
        evidence(out, e);
    }
    match &r.rejected {
        Some(rej) => field(
            out,
            "rejected",
            &format!(
                "{} ({:.2}): {}",
                names::cause(rej.kind),
                rej.confidence,
                rej.reason
            ),
        ),
        None => field(out, "rejected", "none"),
    }
    let ranked: Vec<String> = r
        .ranked
        .iter()
        .map(|h| format!("{} {:.2}", names::cause(h.kind), h.confidence))
        .collect();
    field(out, "considered", &ranked.join(", "));
}

/// One fact, then its count, window, times and events where it has them.
fn evidence(out: &mut String, e: &Evidence) {
    line(out, 4, &format!("- {}", e.fact));
    let mut detail = Vec::new();
    if let Some(n) = e.count {
        detail.push(format!("count {n}"));
    }
    if let Some(w) = e.window_secs {
        detail.push(format!("window {w}s"));
    }
    match (e.first_at, e.last_at) {
        (Some(a), Some(b)) => detail.push(format!("from {} to {}", time(a), time(b))),
        (Some(a), None) => detail.push(format!("since {}", time(a))),
        (None, Some(b)) => detail.push(format!("last {}", time(b))),
        (None, None) => {}
    }
    if !detail.is_empty() {
        line(out, 6, &detail.join(", "));
    }
    if !e.event_ids.is_empty() {
        let ids: Vec<String> = e.event_ids.iter().map(ToString::to_string).collect();
        line(out, 6, &format!("events {}", ids.join(" ")));
    }
}

/// The similar incidents, best first, with how each ended.
fn similar(out: &mut String, list: &[SimilarIncident]) {
    section(out, "Similar incidents");
    if list.is_empty() {
        line(out, 2, "none");
    }
    for (i, s) in list.iter().enumerate() {
        line(
            out,
            2,
            &format!(
                "{}. {} {} ({}, similarity {:.2})",
                i + 1,
                s.incident_id,
                s.workflow_id,
                names::likeness(s.likeness),
                s.similarity
            ),
        );
        let took = s
            .took_secs
            .map_or_else(String::new, |t| format!(" in {t}s"));
        line(
            out,
            5,
            &format!("{} {}: {}{took}", s.error_code, s.status, s.resolution),
        );
    }
}

/// The action, its policy and delay, why, and how sure.
fn recommendation(out: &mut String, r: &Recommendation) {
    section(out, "Recommendation");
    let mut head = names::action(r.action).to_owned();
    if let Some(p) = &r.policy {
        let _ = write!(head, " by policy {p}");
    }
    if let Some(ms) = r.next_delay_ms {
        let _ = write!(head, " in {ms} ms");
    }
    let _ = write!(head, " (confidence {:.2})", r.confidence);
    field(out, "action", &head);
    field(out, "reason", &r.reason);
}

fn section(out: &mut String, title: &str) {
    out.push('\n');
    line(out, 0, title);
}

fn line(out: &mut String, indent: usize, text: &str) {
    let _ = writeln!(out, "{:indent$}{text}", "");
}

/// `label` padded to one column, then `value`.
fn field(out: &mut String, label: &str, value: &str) {
    let text = format!("{label:<15}{value}");
    line(out, 2, text.trim_end());
}

fn rule(r: &RuleRef) -> String {
    format!("{} {}", r.file, r.key)
}

fn or_none(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
