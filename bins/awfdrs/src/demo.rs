//! `awfdrs demo`: a short scripted scenario through HTTP and NATS against a
//! running `awfdrs up`, then the incidents it produced.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use awfdrs_bus::{Bus, Namespace, headers};
use awfdrs_config::Config;
use awfdrs_store::{IncidentFilter, Store};
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use serde_json::{Value, json};

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

/// Runs the demo.
pub async fn run(config: Config, url: Option<String>) -> anyhow::Result<()> {
    let base = url.unwrap_or_else(|| format!("http://{}", config.http.addr));
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

    println!("over HTTP:");
    let first = failure(
        "co-1",
        "checkout",
        "charge",
        "stripe",
        "payment_timeout",
        504,
    );
    for i in 1..=3 {
        let body = if i == 1 {
            first.clone()
        } else {
            failure(
                &format!("co-{i}"),
                "checkout",
                "charge",
                "stripe",
                "payment_timeout",
                504,
            )
        };
        let r = post("/api/v1/events", body)
            .await
            .context("is `awfdrs up` running?")?;
        println!(
            "  checkout failure #{i} (payment_timeout)     -> {}",
            r.status()
        );
    }
    let r = post("/api/v1/events", first.clone()).await?;
    println!(
        "  the first failure again, same key          -> {} {}",
        r.status(),
        r.text().await?
    );
    let mut changed = first;
    changed["vendor"] = json!("adyen");
    let r = post("/api/v1/events", changed).await?;
    println!(
        "  same key, different body                    -> {}",
        r.status()
    );
    let r = post(
        "/api/v1/events",
        json!({"workflow_id": "Checkout!", "event_type": "exploded"}),
    )
    .await?;
    println!(
        "  an invalid event                            -> {} {}",
        r.status(),
        r.text().await?
    );
    let batch = json!([
        failure("po-1", "payouts", "transfer", "adyen", "vendor_5xx", 502),
        failure("po-2", "payouts", "transfer", "adyen", "vendor_5xx", 503),
        {"idempotency_key": "po-3", "workflow_id": "payouts"}
    ]);
    let r = post("/api/v1/events/batch", batch).await?;
    let statuses: Vec<u64> = r.json::<Value>().await?["results"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["status"].as_u64()).collect())
        .unwrap_or_default();
    println!("  a batch of 2 payout failures and 1 invalid  -> {statuses:?}");

    println!("\nover NATS ({}):", ns.events_subject(&slug, "onboarding"));
    let mut dlq = bus.subscribe(ns.dlq(awfdrs_bus::Stage::Detector)).await?;
    for i in 1..=2 {
        let body = failure(
            &format!("kyc-{i}"),
            "onboarding",
            "verify",
            "twilio",
            "dns_failure",
            502,
        );
        bus.publish_core(
            ns.events_subject(&slug, "onboarding"),
            vec![(headers::CORRELATION_ID, format!("demo-nats-{i}"))],
            Bytes::from(body.to_string()),
        )
        .await?;
        println!("  onboarding failure #{i} (dns_failure) published");
    }
    bus.publish_core(
        ns.events_subject(&slug, "onboarding"),
        vec![],
        Bytes::from_static(b"{not json"),
    )
    .await?;
    println!("  a malformed payload published");

    let deadline = Instant::now() + Duration::from_secs(30);
    match tokio::time::timeout_at(deadline.into(), dlq.next()).await {
        Ok(Some(m)) => println!(
            "  dead-lettered on {}: {}",
            m.subject,
            m.header(headers::DLQ_REASON).unwrap_or("?")
        ),
        _ => bail!("the malformed payload did not reach the dead-letter subject"),
    }

    // 3 + 2 + 2 failures in three signatures.
    let filter = IncidentFilter {
        tenant: Some(tenant.id),
        limit: 50,
        ..IncidentFilter::default()
    };
    loop {
        let page = store.list_incidents(&filter).await?;
        let total: i64 = page.items.iter().map(|i| i.event_count).sum();
        if page.items.len() == 3 && total == 7 {
            println!("\nincidents of {slug}:");
            crate::ops::print_incidents(&page.items);
            println!(
                "\nsee them over HTTP: curl -H 'Authorization: Bearer {key}' {base}/api/v1/incidents"
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "expected 3 incidents with 7 events, found {} with {total}",
                page.items.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
