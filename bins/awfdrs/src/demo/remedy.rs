//! The second half of `awfdrs demo`: what the system does about incidents.
//! Each story has a tenant of its own; the demo plays the producers'
//! workflow engine (every retry command of its tenants is answered by the
//! retried run's success, and one workflow takes its commands through an
//! HTTP callback whose signatures the demo checks):
//!
//! * a transient failure retried (through the callback) and auto-resolved
//!   by the successes that follow;
//! * a vendor outage (`sandbox`) that opens the breaker, holds the retry,
//!   and releases it when the breaker half-opens and the vendor recovers;
//! * a permanent error escalated;
//! * a tenant in shadow mode whose would-be retry is recorded, not sent.
//!
//! It prints each incident's decision and actions, and fails when a story
//! does not end as it should.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use super::receiver::Receiver;
pub(super) use super::stage::Stage;
use super::stage::{Keys, engine, event, has, show};

/// Plays the four stories; returns what did not go as it should.
pub(super) async fn play(stage: &Stage<'_>) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let keys: Keys = Arc::default();
    let mut receiver = Receiver::start().await?;
    let fired: Arc<Mutex<HashSet<String>>> = Arc::default();
    let engine = engine(stage, keys.clone(), fired.clone()).await?;
    println!(
        "\nremediation (the demo answers each retry command as the producer's workflow engine would):"
    );

    // A transient failure, retried through the workflow's callback.
    let a = stage.tenant("retry", &keys).await?;
    let (status, cb) = stage
        .send(
            &a,
            reqwest::Method::PUT,
            "/api/v1/workflows/signup/callback",
            Some(json!({"url": receiver.url(&a.slug)})),
        )
        .await?;
    if status != 200 {
        bail!("registering a callback: HTTP {status} {cb}");
    }
    receiver.trust(&a.slug, cb["secret"].as_str().unwrap_or_default());
    for i in 1..=3 {
        let e = event(
            &format!("a{i}"),
            "signup",
            "send-email",
            "sendgrid",
            &format!("run-a{i}"),
            Some("connection_reset"),
        );
        stage
            .send(&a, reqwest::Method::POST, "/api/v1/events", Some(e))
            .await?;
    }
    let delivered = receiver
        .next_for(&a.slug, Instant::now() + stage.settle)
        .await;
    match delivered {
        Some(d) if d.verified.is_ok() => println!(
            "  callback received {} (Standard Webhooks signature verified)",
            d.webhook_id
        ),
        Some(d) => problems.push(format!(
            "the callback's signature did not verify: {:?}",
            d.verified
        )),
        None => problems.push("no retry command reached the workflow's callback".to_owned()),
    }
    match stage
        .incident(&a, "signup", |d| {
            d["status"] == "RESOLVED" && has(d, "retry", "SUCCEEDED")
        })
        .await
    {
        Some(d) => show(
            "a transient failure, retried and auto-resolved by the successes that follow:",
            &d,
        ),
        None => problems
            .push("the retried incident did not resolve with its retry succeeded".to_owned()),
    }

    // A vendor outage: other tenants' failures open sandbox's breaker.
    let b = stage.tenant("outage", &keys).await?;
    let mut noise = Vec::new();
    for name in ["outage-x", "outage-y"] {
        let t = stage.tenant(name, &keys).await?;
        let batch: Vec<Value> = (1..=6)
            .map(|i| {
                let (key, run) = (format!("{name}-{i}"), format!("run-{name}-{i}"));
                event(
                    &key,
                    "ledger-sync",
                    "post",
                    "sandbox",
                    &run,
                    Some("service_unavailable"),
                )
            })
            .collect();
        let path = "/api/v1/events/batch";
        stage
            .send(&t, reqwest::Method::POST, path, Some(Value::Array(batch)))
            .await?;
        noise.push(t);
    }
    let deadline = Instant::now() + stage.settle;
    let open = loop {
        let (_, all) = stage
            .send(&noise[0], reqwest::Method::GET, "/api/v1/breakers", None)
            .await?;
        let open = all["items"].as_array().is_some_and(|v| {
            v.iter()
                .any(|x| x["vendor"] == "sandbox" && x["state"] == "OPEN")
        });
        if open || Instant::now() > deadline {
            break open;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if open {
        println!("  sandbox's breaker opened on the outage");
        let e = event(
            "b1",
            "payouts",
            "transfer",
            "sandbox",
            "run-b1",
            Some("service_unavailable"),
        );
        stage
            .send(&b, reqwest::Method::POST, "/api/v1/events", Some(e))
            .await?;
        match stage
            .incident(&b, "payouts", |d| {
                has(d, "hold", "PENDING") || has(d, "hold", "SUCCEEDED")
            })
            .await
        {
            Some(_) => println!("  the retry is held while the breaker is open"),
            None => problems.push("the retry into the open breaker was not held".to_owned()),
        }
        match stage
            .incident(&b, "payouts", |d| {
                d["status"] == "RESOLVED"
                    && has(d, "hold", "SUCCEEDED")
                    && has(d, "retry", "SUCCEEDED")
            })
            .await
        {
            Some(d) => show(
                "a vendor outage: held, released when the breaker half-opened, recovered:",
                &d,
            ),
            None => problems.push("the held retry was not released and resolved".to_owned()),
        }
    } else {
        problems.push("sandbox's breaker did not open on the outage".to_owned());
    }

    // A permanent error: people are told.
    let c = stage.tenant("declined", &keys).await?;
    let e = event(
        "c1",
        "checkout",
        "charge",
        "stripe",
        "run-c1",
        Some("auth_failed"),
    );
    stage
        .send(&c, reqwest::Method::POST, "/api/v1/events", Some(e))
        .await?;
    match stage
        .incident(&c, "checkout", |d| has(d, "escalate", "SUCCEEDED"))
        .await
    {
        Some(d) => show(
            &format!(
                "a permanent error, escalated (on {}):",
                stage.ns.escalations(&c.slug)
            ),
            &d,
        ),
        None => problems.push("the permanent error was not escalated".to_owned()),
    }

    // Shadow mode: the would-be retry is recorded, and nothing is sent.
    let s = stage.tenant("shadow", &keys).await?;
    let (status, _) = stage
        .send(
            &s,
            reqwest::Method::PUT,
            "/api/v1/mode",
            Some(json!({"mode": "shadow"})),
        )
        .await?;
    if status != 200 {
        problems.push(format!("setting shadow mode: HTTP {status}"));
    }
    for i in 1..=3 {
        let e = event(
            &format!("s{i}"),
            "signup",
            "send-email",
            "sendgrid",
            &format!("run-s{i}"),
            Some("connection_reset"),
        );
        stage
            .send(&s, reqwest::Method::POST, "/api/v1/events", Some(e))
            .await?;
    }
    match stage
        .incident(&s, "signup", |d| {
            d["actions"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x["kind"] == "retry" && x["shadow"] == true)
            })
        })
        .await
    {
        Some(d) => {
            // Well past when it would have been due.
            tokio::time::sleep(Duration::from_secs(3)).await;
            if fired.lock().map(|f| f.contains(&s.slug)).unwrap_or(true) {
                problems.push("a retry command was sent for the tenant in shadow mode".to_owned());
            }
            show(
                "a tenant in shadow mode: the would-be retry recorded, no command sent:",
                &d,
            );
        }
        None => problems.push("the shadow tenant's would-be retry was not recorded".to_owned()),
    }
    engine.abort();
    Ok(problems)
}
