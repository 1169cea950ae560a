//! `awfdrs demo`: a short scripted scenario through HTTP and NATS against a
//! running `awfdrs up`, then the incidents it produced.
//!
//! How many failures each part sends comes from the rules (`open_after` of
//! each error code), and the closing check is worked out from the answers the
//! gateway gave: the demo cannot drift from the shipped rules, and it fails
//! when the system does not do what it should.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use awfdrs_bus::{Bus, Namespace, headers};
use awfdrs_config::Config;
use awfdrs_rules::Rules;
use awfdrs_store::{Incident, IncidentFilter, Store};
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use serde_json::{Value, json};

mod explain;
mod notify;
mod quiet;
mod receiver;
mod remedy;
mod stage;

/// One part of the scenario: failures of one signature.
struct Part {
    key_prefix: &'static str,
    workflow: &'static str,
    step: &'static str,
    vendor: &'static str,
    code: &'static str,
    http_status: u16,
    /// Failures sent when the rules would open an incident with fewer.
    at_least: u32,
}

const CHECKOUT: Part = Part {
    key_prefix: "co",
    workflow: "checkout",
    step: "charge",
    vendor: "stripe",
    code: "payment_timeout",
    http_status: 504,
    at_least: 3,
};
const PAYOUTS: Part = Part {
    key_prefix: "po",
    workflow: "payouts",
    step: "transfer",
    vendor: "adyen",
    code: "vendor_5xx",
    http_status: 502,
    at_least: 2,
};
const ONBOARDING: Part = Part {
    key_prefix: "kyc",
    workflow: "onboarding",
    step: "verify",
    vendor: "twilio",
    code: "dns_failure",
    http_status: 502,
    at_least: 2,
};

impl Part {
    fn failure(&self, i: u32) -> Value {
        failure(
            &format!("{}-{i}", self.key_prefix),
            self.workflow,
            self.step,
            self.vendor,
            self.code,
            self.http_status,
        )
    }
}

/// Failures the rules need before `code` opens an incident (`open_after`).
fn needed(rules: &Rules, code: &str) -> u32 {
    rules.error_code(code).open_after.map_or(1, |o| o.count)
}

/// How many failures a part sends: enough to open its incident.
fn count(rules: &Rules, part: &Part) -> u32 {
    part.at_least.max(needed(rules, part.code))
}

/// What the rules say about a part's code, for the reader.
fn rule_note(rules: &Rules, part: &Part) -> String {
    match rules.error_code(part.code).open_after {
        Some(o) => format!(
            "the rules open an incident for {} after {} failures within {}s",
            part.code,
            o.count,
            o.within.as_secs()
        ),
        None => format!("the first {} failure opens an incident", part.code),
    }
}

/// One line of the scenario: what was sent, and what came of it.
fn row(what: &str, outcome: impl std::fmt::Display) {
    println!("  {what:<44} -> {outcome}");
}

fn failure(key: &str, workflow: &str, step: &str, vendor: &str, code: &str, status: u16) -> Value {
    json!({
        "idempotency_key": key,
        "workflow_id": workflow,
        "event_type": "step_failed",
        "occurred_at": Utc::now().to_rfc3339(),
        "workflow_run_id": format!("run-{key}"),
        "step": step,
        "vendor": vendor,
        "error": {"code": code, "message": format!("{vendor} answered {status}"), "http_status": status},
        "attempt": 1
    })
}

/// What the demo sent and what it was told, from which the check follows.
#[derive(Default)]
struct Tally {
    /// Accepted failures per (workflow, error code).
    accepted: BTreeMap<(String, String), u32>,
    /// Answers that were not the expected ones.
    problems: Vec<String>,
}

impl Tally {
    fn accept(&mut self, part: &Part) {
        *self
            .accepted
            .entry((part.workflow.to_owned(), part.code.to_owned()))
            .or_default() += 1;
    }

    fn expect(&mut self, what: &str, want: u16, got: u16) -> bool {
        if want != got {
            self.problems
                .push(format!("{what}: expected HTTP {want}, got {got}"));
        }
        want == got
    }

    fn events(&self) -> i64 {
        self.accepted.values().map(|n| i64::from(*n)).sum()
    }

    /// The incidents the accepted failures must have produced:
    /// (workflow, code) -> event count.
    fn incidents(&self, rules: &Rules) -> BTreeMap<(String, String), i64> {
        self.accepted
            .iter()
            .filter(|((_, code), n)| **n >= needed(rules, code))
            .map(|(k, n)| (k.clone(), i64::from(*n)))
            .collect()
    }
}

fn found(items: &[Incident]) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for i in items {
        *out.entry((i.workflow_id.clone(), i.error_code.clone()))
            .or_default() += i.event_count;
    }
    out
}

fn describe(incidents: &BTreeMap<(String, String), i64>) -> String {
    let mut s = String::new();
    for ((workflow, code), n) in incidents {
        if !s.is_empty() {
            s.push_str(", ");
        }
        let _ = write!(s, "{workflow}/{code}: {n} events");
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

/// `awfdrs demo`'s arguments.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The gateway's base URL (default: http://<AWFDRS_HTTP_ADDR>).
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds the pipeline gets to settle before the closing check fails.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

/// Runs the demo; after the last send, the pipeline gets `args.timeout`
/// seconds to produce what the check expects.
pub async fn run(config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let settle = Duration::from_secs(args.timeout);
    let base = args
        .url
        .unwrap_or_else(|| format!("http://{}", config.http.addr));
    let base = base.trim_end_matches('/').to_owned();
    let rules_dir = Path::new(&config.rules.dir);
    let rules = Rules::load(rules_dir)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("rules in {} are invalid", rules_dir.display()))?;
    let store = Store::connect(&config.database.url, 2, Duration::from_secs(5)).await?;
    store.migrate().await?;
    let ns = Namespace::new(config.namespace.clone()).map_err(anyhow::Error::msg)?;
    let bus = Bus::connect(
        &config.nats.url,
        ns.clone(),
        config.nats.replicas,
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await?;

    let slug = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let key = awfdrs_domain::new_api_key();
    let tenant = store.create_tenant(&slug, &key).await?;
    println!("tenant {slug} created\n");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&key)
            .header("X-Correlation-ID", format!("demo-{}", uuid::Uuid::new_v4()))
            .json(&body)
            .send()
    };
    let mut tally = Tally::default();

    println!("over HTTP ({}):", rule_note(&rules, &CHECKOUT));
    let first = CHECKOUT.failure(1);
    for i in 1..=count(&rules, &CHECKOUT) {
        // The first one is sent again below, byte for byte.
        let body = if i == 1 {
            first.clone()
        } else {
            CHECKOUT.failure(i)
        };
        let r = post("/api/v1/events", body)
            .await
            .with_context(|| format!("no answer from {base}: is `awfdrs up` running?"))?;
        let status = r.status().as_u16();
        row(
            &format!("checkout failure #{i} ({})", CHECKOUT.code),
            status,
        );
        if tally.expect(&format!("checkout failure #{i}"), 202, status) {
            tally.accept(&CHECKOUT);
        }
    }
    let r = post("/api/v1/events", first.clone()).await?;
    let status = r.status().as_u16();
    row(
        "the first failure again, same key",
        format!("{status} {}", r.text().await?),
    );
    tally.expect("the same failure again", 200, status);
    let mut changed = first;
    changed["vendor"] = json!("adyen");
    let r = post("/api/v1/events", changed).await?;
    let status = r.status().as_u16();
    row("same key, different body", status);
    tally.expect("a reused key with a different body", 409, status);
    let r = post(
        "/api/v1/events",
        json!({"workflow_id": "Checkout!", "event_type": "exploded"}),
    )
    .await?;
    let status = r.status().as_u16();
    row("an invalid event", format!("{status} {}", r.text().await?));
    tally.expect("an invalid event", 422, status);

    let payouts = count(&rules, &PAYOUTS);
    let mut batch: Vec<Value> = (1..=payouts).map(|i| PAYOUTS.failure(i)).collect();
    batch.push(json!({"idempotency_key": "po-invalid", "workflow_id": "payouts"}));
    let r = post("/api/v1/events/batch", Value::Array(batch)).await?;
    let status = r.status().as_u16();
    let statuses: Vec<u64> = r.json::<Value>().await.unwrap_or_default()["results"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["status"].as_u64()).collect())
        .unwrap_or_default();
    println!("  ({})", rule_note(&rules, &PAYOUTS));
    row(
        &format!("a batch of {payouts} payout failures, 1 invalid"),
        format!("{statuses:?}"),
    );
    if tally.expect("the batch", 200, status) {
        let want: Vec<u64> = (0..payouts).map(|_| 202).chain([422]).collect();
        for (i, got) in statuses.iter().enumerate() {
            if i < payouts as usize && *got == 202 {
                tally.accept(&PAYOUTS);
            }
        }
        if statuses != want {
            tally.problems.push(format!(
                "the batch: expected item statuses {want:?}, got {statuses:?}"
            ));
        }
    }

    let subject = ns.events_subject(&slug, ONBOARDING.workflow);
    println!(
        "\nover NATS ({subject}; {}):",
        rule_note(&rules, &ONBOARDING)
    );
    let mut dlq = bus.subscribe(ns.dlq(awfdrs_bus::Stage::Detector)).await?;
    for i in 1..=count(&rules, &ONBOARDING) {
        bus.publish_core(
            subject.clone(),
            vec![(headers::CORRELATION_ID, format!("demo-nats-{i}"))],
            Bytes::from(ONBOARDING.failure(i).to_string()),
        )
        .await?;
        tally.accept(&ONBOARDING);
        row(
            &format!("onboarding failure #{i} ({})", ONBOARDING.code),
            "published",
        );
    }
    bus.publish_core(subject.clone(), vec![], Bytes::from_static(b"{not json"))
        .await?;
    row("a malformed payload", "published");

    let deadline = Instant::now() + settle;
    // Ours: other producers in this namespace may be dead-lettered too.
    let ours = async {
        while let Some(m) = dlq.next().await {
            if m.header(headers::DLQ_SUBJECT) == Some(subject.as_str()) {
                return Some(m);
            }
        }
        None
    };
    match tokio::time::timeout_at(deadline.into(), ours).await {
        Ok(Some(m)) => println!(
            "  dead-lettered on {}: {}",
            m.subject,
            awfdrs_domain::printable(m.header(headers::DLQ_REASON).unwrap_or("?"))
        ),
        _ => tally
            .problems
            .push("the malformed payload did not reach the dead-letter subject".to_owned()),
    }

    let want = tally.incidents(&rules);
    let want_events = tally.events();
    let filter = IncidentFilter {
        tenant: Some(tenant.id),
        limit: 50,
        ..IncidentFilter::default()
    };
    let (items, events) = loop {
        let page = store.list_incidents(&filter).await?;
        let events = store.event_count(tenant.id).await?;
        if (found(&page.items) == want && events == want_events) || Instant::now() > deadline {
            break (page.items, events);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("\nincidents of {slug}:");
    crate::table::print_incidents(&items);
    if found(&items) != want {
        tally.problems.push(format!(
            "expected incidents {}; found {}",
            describe(&want),
            describe(&found(&items))
        ));
    }
    if events != want_events {
        tally.problems.push(format!(
            "expected {want_events} events stored for {slug}; found {events}"
        ));
    }
    // The analyzer explains every incident.
    let unexplained = explain::each(&store, tenant.id, &items, deadline).await?;
    tally.problems.extend(unexplained);
    // Then what the system does about incidents.
    let stage = remedy::Stage {
        base: &base,
        http: http.clone(),
        store: &store,
        bus: &bus,
        ns: &ns,
        prefix: &slug,
        successes: config.detector.auto_resolve_successes,
        rules: &rules,
        settle,
    };
    tally.problems.extend(remedy::play(&stage).await?);
    tally.problems.extend(notify::play(&stage).await?);
    if !tally.problems.is_empty() {
        bail!(
            "the demo did not go as it should:\n  {}",
            tally.problems.join("\n  ")
        );
    }
    println!(
        "\n{} incidents with {want_events} events, as the rules say, each explained.\nsee them over HTTP: GET {base}/api/v1/incidents with Authorization: Bearer {key}",
        want.len()
    );
    Ok(())
}
