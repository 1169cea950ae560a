//! The demo's notification stories, played on one local receiver with a
//! target per channel (webhook, Slack, PagerDuty), each checking the
//! Standard Webhooks signature with its channel's secret:
//!
//! * a permanent error escalated: told to level 1 (a webhook and a Slack
//!   channel), each body of its kind's shape; nobody acknowledges it, so
//!   level 2 (PagerDuty) is told once `notifications.escalate_after_ms`
//!   has passed;
//! * a first channel that answers 500: tried `notifications.max_tries`
//!   times, recorded `FAILED`, and level 2 told at once (the fallback);
//! * an incident acknowledged when level 1 is told: level 2 is not told,
//!   though as long has passed as the unacknowledged one took to reach it.
//!
//! The three run side by side; each ends as it should or says why not.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use super::quiet;
use super::receiver::{Delivery, Receiver};
use super::stage::{Keys, Stage, Tenant, event};

/// The PagerDuty routing key of the demo's PagerDuty channels.
const ROUTING_KEY: &str = "demo0routing0key0000000000000000";

/// A channel a story registers.
pub(super) struct Chan {
    name: &'static str,
    kind: &'static str,
    level: i32,
}

pub(super) const ONCALL: Chan = Chan {
    name: "oncall",
    kind: "webhook",
    level: 1,
};
const TEAM: Chan = Chan {
    name: "team",
    kind: "slack",
    level: 1,
};
const PAGER: Chan = Chan {
    name: "pager",
    kind: "pagerduty",
    level: 2,
};
const BACKUP: Chan = Chan {
    name: "backup",
    kind: "slack",
    level: 2,
};

/// The receiver's key of `t`'s channel `c`.
pub(super) fn key(t: &Tenant, c: &Chan) -> String {
    format!("{}-{}", t.slug, c.name)
}

/// A tenant with `chans` registered through the API, and its failure
/// (`e`; `None`: a permanent one) sent.
pub(super) async fn story(
    stage: &Stage<'_>,
    receiver: &Receiver,
    name: &str,
    chans: &[&Chan],
    e: Option<Value>,
) -> anyhow::Result<Tenant> {
    let t = stage.tenant(name, &Keys::default()).await?;
    for c in chans {
        let mut body = json!({
            "name": c.name,
            "kind": c.kind,
            "url": receiver.target(c.kind, &key(&t, c)),
            "level": c.level,
        });
        if c.kind == "pagerduty" {
            body["routing_key"] = json!(ROUTING_KEY);
        }
        let path = "/api/v1/channels";
        let (status, got) = stage
            .send(&t, reqwest::Method::POST, path, Some(body))
            .await?;
        if status != 201 {
            bail!(
                "registering channel {} of {}: HTTP {status} {got}",
                c.name,
                t.slug
            );
        }
        receiver.trust(&key(&t, c), got["secret"].as_str().unwrap_or_default());
    }
    let e = e.unwrap_or_else(|| {
        event(
            "n1",
            "checkout",
            "charge",
            "stripe",
            "run-n1",
            Some("auth_failed"),
        )
    });
    let (status, got) = stage
        .send(&t, reqwest::Method::POST, "/api/v1/events", Some(e))
        .await?;
    if status != 202 {
        bail!("sending {}'s failure: HTTP {status} {got}", t.slug);
    }
    Ok(t)
}

/// What `body` says, when it has the shape `kind` takes at `level`.
fn shape(kind: &str, level: i32, b: &Value) -> Result<String, String> {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    match kind {
        "webhook" => {
            let id = text(&b["incident"]["id"]).ok_or("no incident.id")?;
            if b["type"] != "incident.escalated" || b["level"] != level {
                return Err(format!("type {} at level {}", b["type"], b["level"]));
            }
            text(&b["decision"]["id"]).ok_or("no decision.id")?;
            let reason = text(&b["reason"]).ok_or("no reason")?;
            Ok(format!("incident.escalated of {id}: {reason}"))
        }
        "slack" => {
            text(&b["text"]).ok_or("no text")?;
            let blocks = b["blocks"].as_array().ok_or("no blocks")?;
            let header = blocks
                .first()
                .filter(|h| h["type"] == "header")
                .and_then(|h| text(&h["text"]["text"]))
                .ok_or("the first block is not a header")?;
            Ok(format!("text and {} blocks, \"{header}\"", blocks.len()))
        }
        _ => {
            let p = &b["payload"];
            let summary = text(&p["summary"]).ok_or("no payload.summary")?;
            let severity = p["severity"].as_str().unwrap_or_default();
            if b["routing_key"] != ROUTING_KEY
                || b["event_action"] != "trigger"
                || text(&b["dedup_key"]).is_none()
                || !["critical", "error", "warning", "info"].contains(&severity)
                || summary.chars().count() > 1024
            {
                return Err(format!("not an Events API v2 trigger: {b}"));
            }
            Ok(format!(
                "trigger, dedup_key {}, severity {severity}",
                b["dedup_key"].as_str().unwrap_or("?")
            ))
        }
    }
}

/// Waits for `t`'s channel `c` to be told, and checks what it was told;
/// prints it, or adds why not to `problems`.
async fn told(
    stage: &Stage<'_>,
    receiver: &mut Receiver,
    t: &Tenant,
    c: &Chan,
    problems: &mut Vec<String>,
) -> Option<Delivery> {
    let deadline = Instant::now() + stage.settle;
    let Some(d) = receiver.next_for(&key(t, c), deadline).await else {
        problems.push(format!(
            "{}'s {} channel {} (level {}) was not told within {} s",
            t.slug,
            c.kind,
            c.name,
            c.level,
            stage.settle.as_secs()
        ));
        return None;
    };
    if let Err(e) = &d.verified {
        problems.push(format!(
            "{}'s {} signature did not verify: {e}",
            t.slug, c.name
        ));
        return None;
    }
    match shape(c.kind, c.level, &d.json()) {
        Ok(says) => {
            println!(
                "    {:<9} {:<7} level {} <- {says} (signature verified)",
                c.kind, c.name, c.level
            );
            Some(d)
        }
        Err(e) => {
            problems.push(format!(
                "{}'s {} body is not a {} body: {e}",
                t.slug, c.name, c.kind
            ));
            None
        }
    }
}

/// Plays the notification stories; returns what did not go as it should.
pub(super) async fn play(stage: &Stage<'_>) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut receiver = Receiver::start().await?;
    let escalated = story(stage, &receiver, "notify", &[&ONCALL, &TEAM, &PAGER], None).await?;
    let primary = Chan {
        name: "primary",
        ..ONCALL
    };
    let failing = story(stage, &receiver, "fallback", &[&primary, &BACKUP], None).await?;
    receiver.fail(&key(&failing, &primary));
    let acked = story(stage, &receiver, "ack", &[&ONCALL, &PAGER], None).await?;
    let quiet = quiet::start(stage, &receiver).await?;
    println!(
        "\nnotifications (to channels registered with POST /api/v1/channels, on a receiver at {} \
         that checks each Standard Webhooks signature with its channel's secret):",
        receiver.addr
    );

    println!("  a permanent error, escalated to level 1:");
    let first = told(stage, &mut receiver, &escalated, &ONCALL, &mut problems).await;
    told(stage, &mut receiver, &escalated, &TEAM, &mut problems).await;
    // Acknowledged as soon as its level 1 is told, well within escalate_after.
    let acked_at = acknowledge(stage, &mut receiver, &acked, &mut problems).await;

    println!("  nobody acknowledged it, so level 2 is told once escalate_after has passed:");
    let second = told(stage, &mut receiver, &escalated, &PAGER, &mut problems).await;
    let took = match (&first, &second) {
        (Some(a), Some(b)) => {
            let took = b.at.duration_since(a.at);
            println!("    ({:.1} s after level 1)", took.as_secs_f64());
            Some(took)
        }
        (Some(_), None) => {
            problems.push(
                "the unacknowledged incident did not reach level 2 (`awfdrs up` needs a short \
                 notifications.escalate_after_ms: scripts/run sets \
                 AWFDRS__NOTIFICATIONS__ESCALATE_AFTER_MS=5000)"
                    .to_owned(),
            );
            None
        }
        _ => None,
    };

    println!("  a first channel that answers 500, falling back to the second:");
    fallback(stage, &mut receiver, &failing, &primary, &mut problems).await?;

    problems.extend(quiet::finish(stage, &mut receiver, quiet).await?);

    if let (Some(at), Some(took)) = (acked_at, took) {
        // As long as the unacknowledged one took, and a margin.
        let until = at + took + Duration::from_secs(2);
        tokio::time::sleep_until(until.into()).await;
        let late = receiver.taken(&key(&acked, &PAGER));
        if late.is_empty() {
            println!(
                "  acknowledged: level 2 not told of it {:.1} s after its level 1 (the \
                 unacknowledged one was after {:.1} s)",
                (took + Duration::from_secs(2)).as_secs_f64(),
                took.as_secs_f64()
            );
        } else {
            problems.push("level 2 was told of an acknowledged incident".to_owned());
        }
    }
    Ok(problems)
}

/// `t`'s level 1 told, acknowledges its incident; returns when level 1 was
/// told.
async fn acknowledge(
    stage: &Stage<'_>,
    receiver: &mut Receiver,
    t: &Tenant,
    problems: &mut Vec<String>,
) -> Option<Instant> {
    println!("  an incident acknowledged when level 1 is told:");
    let d = told(stage, receiver, t, &ONCALL, problems).await?;
    let id = d.json()["incident"]["id"].as_str()?.to_owned();
    let path = format!("/api/v1/incidents/{id}/acknowledge");
    match stage.send(t, reqwest::Method::POST, &path, None).await {
        Ok((200, got)) => {
            println!(
                "    POST {path} -> 200, acknowledged by {}",
                got["acknowledged_by"].as_str().unwrap_or("?")
            );
            Some(d.at)
        }
        Ok((status, got)) => {
            problems.push(format!("acknowledging {id}: HTTP {status} {got}"));
            None
        }
        Err(e) => {
            problems.push(format!("acknowledging {id}: {e:#}"));
            None
        }
    }
}

/// `t`'s level 1 channel `primary` answers 500 until its tries run out;
/// level 2 is told at once, and the incident records both.
async fn fallback(
    stage: &Stage<'_>,
    receiver: &mut Receiver,
    t: &Tenant,
    primary: &Chan,
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    let Some(backup) = told(stage, receiver, t, &BACKUP, problems).await else {
        problems.push(format!(
            "no fallback to level 2 within {} s (`awfdrs up` needs few notifications.max_tries: \
             scripts/run sets AWFDRS__NOTIFICATIONS__MAX_TRIES=3)",
            stage.settle.as_secs()
        ));
        return Ok(());
    };
    let says = backup.json()["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"]["text"].as_str())
        .find(|t| t.contains("(fallback)"))
        .map(|t| t.rsplit("— ").next().unwrap_or(t).to_owned());
    match says {
        Some(s) => println!("      saying why: {s}"),
        None => problems.push("the level 2 notification does not say it is a fallback".to_owned()),
    }
    let tries = receiver.taken(&key(t, primary));
    let ids: std::collections::BTreeSet<&str> =
        tries.iter().map(|d| d.webhook_id.as_str()).collect();
    if tries.is_empty()
        || tries
            .iter()
            .any(|d| d.verified.is_err() || d.answered != 500)
    {
        problems
            .push("the failing channel's tries were not each signed and answered 500".to_owned());
    } else if ids.len() != 1 {
        problems.push(format!(
            "the failing channel's tries had webhook-ids {ids:?}"
        ));
    } else {
        println!(
            "    {:<9} {:<7} level 1 answered 500 to each of {} tries, all webhook-id {}",
            primary.kind,
            primary.name,
            tries.len(),
            ids.first().unwrap_or(&"?")
        );
    }
    let recorded = stage
        .incident(t, "checkout", |d| {
            let n = d["notifications"].as_array().cloned().unwrap_or_default();
            let at = |level: i32, status: &str| {
                n.iter()
                    .any(|x| x["level"] == level && x["status"] == status)
            };
            at(1, "FAILED") && at(2, "DELIVERED")
        })
        .await;
    match recorded {
        Some(d) => {
            println!(
                "    recorded (GET /api/v1/incidents/{}):",
                d["id"].as_str().unwrap_or("?")
            );
            for n in d["notifications"].as_array().into_iter().flatten() {
                println!(
                    "      level {} {} {:<9} {:<9} {} {}, last HTTP {}{}",
                    n["level"],
                    n["channel"].as_str().unwrap_or("?"),
                    n["kind"].as_str().unwrap_or("?"),
                    n["status"].as_str().unwrap_or("?"),
                    n["tries"],
                    if n["tries"] == 1 { "try" } else { "tries" },
                    n["last_status_code"],
                    n["last_error"]
                        .as_str()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
            }
        }
        None => problems
            .push("the incident does not record level 1 FAILED and level 2 DELIVERED".to_owned()),
    }
    Ok(())
}
