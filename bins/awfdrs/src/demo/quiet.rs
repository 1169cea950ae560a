//! The demo's quiet-when-fixed story: a transient failure reported after
//! its retry policy's `max_elapsed` (a backlog replayed late) is not
//! retried but escalated; the notification waits its code's `notify_after`
//! (`dns_failure`: one minute in the shipped rules); the workflow's own
//! retry succeeds, the successes resolve the incident, and the
//! notification is `CANCELLED`: its channel is sent nothing.

use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use serde_json::Value;

use super::notify::{ONCALL, key, story};
use super::receiver::Receiver;
use super::stage::{Stage, Tenant, event, show};

const CODE: &str = "dns_failure";
const WORKFLOW: &str = "lookup";
const STEP: &str = "resolve";
const VENDOR: &str = "twilio";
const RUN: &str = "run-q1";

/// The story under way: its tenant and the code's `notify_after`.
pub(super) struct Quiet {
    tenant: Tenant,
    notify_after: Duration,
}

/// Registers the tenant's channel and sends its late failure.
///
/// # Errors
/// When the rules give the code no `notify_after` or no `max_elapsed`, or
/// the gateway refuses the tenant's channel or failure.
pub(super) async fn start(stage: &Stage<'_>, receiver: &Receiver) -> anyhow::Result<Quiet> {
    let rules = stage.rules;
    let Some(notify_after) = rules.error_code(CODE).notify_after else {
        bail!("the rules give {CODE} no notify_after: the quiet story cannot be played");
    };
    let Some(max_elapsed) = rules
        .retry_policy_for(CODE)
        .and_then(|(_, p)| p.max_elapsed)
    else {
        bail!("the rules give {CODE}'s retry policy no max_elapsed");
    };
    let mut e = event("q1", WORKFLOW, STEP, VENDOR, RUN, Some(CODE));
    let late = chrono::Duration::from_std(max_elapsed)? + chrono::Duration::minutes(1);
    e["occurred_at"] = Value::String((Utc::now() - late).to_rfc3339());
    let tenant = story(stage, receiver, "quiet", &[&ONCALL], Some(e)).await?;
    Ok(Quiet {
        tenant,
        notify_after,
    })
}

/// Waits for the held notification, plays the workflow's successful retry,
/// and checks the notification was cancelled and nothing sent.
///
/// # Errors
/// When the gateway cannot be reached.
pub(super) async fn finish(
    stage: &Stage<'_>,
    receiver: &mut Receiver,
    q: Quiet,
) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let t = &q.tenant;
    let notified = |d: &Value, status: &str| {
        d["notifications"]
            .as_array()
            .is_some_and(|n| n.iter().any(|x| x["status"] == status))
    };
    println!(
        "  a transient failure reported late (past its retry policy's max_elapsed), escalated, \
         fixed by the workflow's own retry:"
    );
    if stage
        .incident(t, WORKFLOW, |d| notified(d, "PENDING"))
        .await
        .is_none()
    {
        problems.push(format!("{}'s escalation queued no notification", t.slug));
        return Ok(problems);
    }
    println!(
        "    notification queued, held for {CODE}'s notify_after ({} s)",
        q.notify_after.as_secs()
    );
    for i in 0..stage.successes {
        let e = event(&format!("q-ok-{i}"), WORKFLOW, STEP, VENDOR, RUN, None);
        let (status, got) = stage
            .send(t, reqwest::Method::POST, "/api/v1/events", Some(e))
            .await?;
        if status != 202 {
            problems.push(format!("the retry's success: HTTP {status} {got}"));
        }
    }
    match stage
        .incident(t, WORKFLOW, |d| {
            d["status"] == "RESOLVED" && notified(d, "CANCELLED")
        })
        .await
    {
        Some(d) => {
            show(
                "a transient failure fixed before people were told: the notification cancelled",
                &d,
            );
            for n in d["notifications"].as_array().into_iter().flatten() {
                println!(
                    "  notify   {:<10} level {} {} {}: {}",
                    n["status"].as_str().unwrap_or("?"),
                    n["level"],
                    n["kind"].as_str().unwrap_or("?"),
                    n["channel"].as_str().unwrap_or("?"),
                    n["last_error"].as_str().unwrap_or("")
                );
            }
        }
        None => problems.push(format!(
            "{}'s incident did not resolve with its notification CANCELLED",
            t.slug
        )),
    }
    // Well past the next delivery round.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = receiver.taken(&key(t, &ONCALL));
    if sent.is_empty() {
        println!("  its channel was sent nothing");
    } else {
        problems.push(format!(
            "{} notification(s) reached {}'s channel",
            sent.len(),
            t.slug
        ));
    }
    Ok(problems)
}
