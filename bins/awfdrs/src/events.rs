//! `awfdrs events send|publish`: send an event (or a JSON array of events)
//! the way a producer does, without curl or the `nats` CLI: `send` POSTs it
//! to the gateway with a tenant's key or webhook signature, `publish` puts it
//! on the tenant's events subject in NATS.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use awfdrs_bus::{Bus, Namespace, Outgoing};
use awfdrs_config::Config;
use awfdrs_store::Store;
use bytes::Bytes;
use clap::{ArgGroup, Subcommand};
use serde_json::Value;

/// `awfdrs events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// POST an event (or a JSON array: the batch endpoint) to the gateway; print status and body.
    #[command(group(ArgGroup::new("auth").required(true).args(["key", "tenant"])))]
    Send {
        /// The tenant's API key (Authorization: Bearer).
        #[arg(long, env = "AWFDRS_API_KEY", hide_env_values = true)]
        key: Option<String>,
        /// Sign as this tenant with its webhook secret (Standard Webhooks) instead of a key.
        #[arg(long)]
        tenant: Option<String>,
        /// The gateway's base URL (default: http://<AWFDRS_HTTP_ADDR>).
        #[arg(long)]
        url: Option<String>,
        /// The JSON file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// Publish an event (or each event of a JSON array) to `<ns>.events.<tenant>.<workflow_id>`.
    Publish {
        /// The tenant's slug (the subject's tenant token).
        #[arg(long)]
        tenant: String,
        /// The JSON file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
}

/// Runs `awfdrs events ...`.
pub async fn run(config: Config, command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Send {
            key,
            tenant,
            url,
            file,
        } => {
            let base = url.unwrap_or_else(|| format!("http://{}", config.http.addr));
            let auth = match (key, tenant) {
                (Some(key), _) => Auth::Bearer(key),
                (None, Some(slug)) => Auth::Signed(signing_secret(&config, &slug).await?, slug),
                (None, None) => bail!("give --key (or AWFDRS_API_KEY) or --tenant"),
            };
            send(&base, &auth, read_body(file.as_deref())?).await
        }
        EventsCommand::Publish { tenant, file } => {
            publish(&config, &tenant, read_body(file.as_deref())?).await
        }
    }
}

/// The raw JSON from `file`, or stdin for `-` or no file.
fn read_body(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match file {
        Some(p) if p != Path::new("-") => {
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
        }
        _ => {
            if std::io::stdin().is_terminal() {
                eprintln!("reading the JSON from stdin (end with Ctrl-D)");
            }
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read stdin")?;
            Ok(buf)
        }
    }
}

enum Auth {
    Bearer(String),
    /// The tenant's webhook secret and slug.
    Signed(String, String),
}

async fn signing_secret(config: &Config, slug: &str) -> anyhow::Result<String> {
    let store = Store::connect(&config.database.url, 1, Duration::from_secs(5)).await?;
    let store = awfdrs_runtime::with_keys(store, config)?;
    let found = store.tenant_webhook_secret(slug).await?;
    store.pool().close().await;
    match found {
        Some((_, secret)) => Ok(secret),
        None => bail!(
            "tenant {slug} does not exist or has no webhook secret (awfdrs tenants webhook-secret {slug}); or send with --key"
        ),
    }
}

async fn send(base: &str, auth: &Auth, body: Vec<u8>) -> anyhow::Result<()> {
    // An array goes to the batch endpoint; anything else is the gateway's to judge.
    let batch = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    let path = if batch {
        "/api/v1/events/batch"
    } else {
        "/api/v1/events"
    };
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut req = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json");
    req = match auth {
        Auth::Bearer(key) => req.bearer_auth(key),
        Auth::Signed(secret, slug) => {
            let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            let ts = chrono::Utc::now().timestamp();
            let signature = awfdrs_domain::webhook::sign(secret, &id, ts, &body)
                .map_err(|e| anyhow::anyhow!("tenant {slug}'s webhook secret: {e}"))?;
            req.header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", signature)
                .header("x-awfdrs-tenant", slug.as_str())
        }
    };
    let resp = req
        .body(body)
        .send()
        .await
        .with_context(|| format!("no answer from {url}: is `awfdrs up` running?"))?;
    let status = resp.status();
    let text = resp.text().await.context("reading the gateway's answer")?;
    println!("{status}");
    println!("{}", text.trim_end());
    if !status.is_success() {
        bail!("the gateway answered {status}");
    }
    Ok(())
}

async fn publish(config: &Config, tenant: &str, body: Vec<u8>) -> anyhow::Result<()> {
    if !awfdrs_domain::is_slug(tenant) {
        bail!("--tenant {tenant:?} is not a slug");
    }
    let value: Value = serde_json::from_slice(&body).context("the input is not JSON")?;
    // One event goes out byte for byte as given; the items of an array
    // each as their own JSON.
    let events: Vec<(Value, Bytes)> = match value {
        Value::Array(items) => items
            .into_iter()
            .map(|v| serde_json::to_vec(&v).map(|b| (v, Bytes::from(b))))
            .collect::<Result<_, _>>()?,
        one => vec![(one, Bytes::from(body))],
    };
    let ns = Namespace::new(config.namespace.clone()).map_err(anyhow::Error::msg)?;
    let bus = Bus::connect(
        &config.nats.url,
        ns.clone(),
        config.nats.replicas,
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await?;
    let mut msgs = Vec::with_capacity(events.len());
    for (i, (event, payload)) in events.into_iter().enumerate() {
        // The subject names the workflow; the event says which one it is.
        let workflow = event["workflow_id"]
            .as_str()
            .filter(|w| awfdrs_domain::is_slug(w))
            .with_context(|| {
                format!("event {i}: workflow_id must be a slug (the subject's last token)")
            })?;
        msgs.push(Outgoing {
            subject: ns.events_subject(tenant, workflow),
            // A producer's own message id: unique per publish, so the
            // broker never takes another message for this one.
            msg_id: format!("cli-{}", uuid::Uuid::new_v4()),
            correlation_id: None,
            headers: Vec::new(),
            payload,
        });
    }
    let subjects: Vec<String> = msgs.iter().map(|m| m.subject.clone()).collect();
    for (subject, result) in subjects.iter().zip(bus.publish_many(msgs).await) {
        let published = result.with_context(|| {
            format!("publish to {subject} failed (is `awfdrs up` or `awfdrs migrate` done?)")
        })?;
        println!(
            "published to {subject} (stream sequence {})",
            published.sequence
        );
    }
    Ok(())
}
