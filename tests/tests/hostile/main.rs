//! Hostile input over HTTP and NATS against the real `awfdrs up`, driven by
//! one table of cases (name, transport, input, expected outcome). Every case
//! runs, then the suite checks that the process is still alive, `/ready` is
//! 200, and a reconciliation of every answer against the database and the
//! dead letters: every 202 has its events row holding the body that got it,
//! every rejected input left nothing behind, every NATS message is stored
//! or dead-lettered, every outbox row is published, and no control
//! character reached the logs.
//!
//! `AWFDRS_HOSTILE_CASES=<name>,<name>` runs only those cases (the final
//! checks still run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use awfdrs_bus::Namespace;
use awfdrs_tests::{Ledger, Up, World, cleanup, reconcile_within};

use crate::case::{Case, Expect};
use crate::harness::H;
use crate::run::run_case;
use crate::table::cases;

mod arbiter;
mod case;
mod harness;
mod keys;
mod limits;
mod raw;
mod remedy;
mod run;
mod table;

/// Control characters other than line ends in the log, with the terminal
/// colour sequences of a plain formatter taken out.
fn log_control_characters(log: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < log.len() {
        let b = log[i];
        if b == 0x1b && log.get(i + 1) == Some(&b'[') {
            let mut j = i + 2;
            while j < log.len() && (log[j].is_ascii_digit() || log[j] == b';') {
                j += 1;
            }
            if log.get(j) == Some(&b'm') {
                i = j + 1;
                continue;
            }
        }
        if (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f {
            let start = i.saturating_sub(60);
            let end = (i + 20).min(log.len());
            found.push(format!(
                "byte 0x{b:02x} in {:?}",
                String::from_utf8_lossy(&log[start..end])
            ));
        }
        i += 1;
    }
    found
}

#[tokio::test]
async fn hostile_input_never_crashes_loses_or_lies() {
    let world = World::new().await;
    let store = world.store(4).await;
    let acme_key = awfdrs_domain::new_api_key();
    let globex_key = awfdrs_domain::new_api_key();
    let acme = store.create_tenant("acme", &acme_key).await.unwrap();
    let globex = store.create_tenant("globex", &globex_key).await.unwrap();
    let signed = store
        .create_tenant("signed", &awfdrs_domain::new_api_key())
        .await
        .unwrap();
    store
        .create_tenant("bare", &awfdrs_domain::new_api_key())
        .await
        .unwrap();
    let secret = awfdrs_domain::webhook::new_secret();
    store.set_webhook_secret("signed", &secret).await.unwrap();
    let admin = awfdrs_domain::new_api_key();
    store.create_admin_key("ops", &admin).await.unwrap();

    let log = std::env::temp_dir().join(format!("awfdrs-hostile-{}.log", world.namespace));
    let mut up = Up::spawn(world.env(&[("LOG_FORMAT", "pretty")]), log.clone());
    up.wait_ready(Duration::from_secs(60)).await;
    eprintln!("awfdrs up log: {}", log.display());

    let client = async_nats::connect(awfdrs_tests::nats_url()).await.unwrap();
    let max_payload = client.server_info().max_payload;
    let ns = Namespace::new(world.namespace.clone()).unwrap();
    let h = H {
        base: up.base.clone(),
        up: tokio::sync::Mutex::new(up),
        pool: store.pool().clone(),
        store,
        js: async_nats::jetstream::new(client),
        ns,
        ledger: Ledger::default(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap(),
        acme: (acme.id, acme_key),
        globex: (globex.id, globex_key),
        signed: (signed.id, secret),
        admin,
        max_payload,
        world,
    };

    let only = std::env::var("AWFDRS_HOSTILE_CASES").ok();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| {
            only.as_ref()
                .is_none_or(|o| o.split(',').any(|n| n.trim() == c.name))
        })
        .collect();
    // Slow-client cases wait on the server's timeouts: run them alongside.
    let (slow, quick): (Vec<&Case>, Vec<&Case>) = cases
        .iter()
        .partition(|c| matches!(c.expect, Expect::Closed));
    let slow_runs = futures::future::join_all(
        slow.iter()
            .map(|c| async { (c.name, run_case(&h, c).await) }),
    );
    let quick_runs = async {
        let mut out = Vec::new();
        for c in &quick {
            let mut result = run_case(&h, c).await;
            let mut up = h.up.lock().await;
            if !up.alive() {
                let status = up.exit_status();
                result = Err(format!(
                    "the process died ({status:?}){}",
                    result.err().map(|e| format!("; {e}")).unwrap_or_default()
                ));
                // A poison message may kill it again on redelivery: try a
                // few times, then let the remaining cases find it down.
                for _ in 0..10 {
                    up.kill().await;
                    up.restart();
                    if up.try_ready(Duration::from_secs(30)).await {
                        break;
                    }
                }
            }
            out.push((c.name, result));
        }
        out
    };
    let (slow_results, mut results) = tokio::join!(slow_runs, quick_runs);
    results.extend(slow_results);

    // The end: alive, ready, and every answer reconciled.
    let mut finals = Vec::new();
    {
        let mut up = h.up.lock().await;
        if !up.alive() {
            finals.push(format!("the process is not alive: {:?}", up.exit_status()));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ready = up.ready_status().await;
        while ready != Some(200) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            ready = up.ready_status().await;
        }
        if ready != Some(200) {
            finals.push(format!("/ready answers {ready:?}, not 200"));
        }
    }
    let problems = reconcile_within(
        Duration::from_secs(30),
        &h.pool,
        &h.js,
        h.ns.as_str(),
        &h.ledger,
    )
    .await;
    finals.extend(problems.into_iter().map(|p| format!("reconciliation: {p}")));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let unpublished: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&h.pool)
                .await
                .unwrap();
        if unpublished == 0 {
            break;
        }
        if Instant::now() >= deadline {
            finals.push(format!("{unpublished} outbox rows never published"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log_bytes = std::fs::read(&log).unwrap_or_default();
    finals.extend(
        log_control_characters(&log_bytes)
            .into_iter()
            .take(5)
            .map(|c| format!("log: control character {c}")),
    );

    let mut report = String::new();
    for (name, r) in &results {
        match r {
            Ok(()) => report.push_str(&format!("  ok    {name}\n")),
            Err(e) => report.push_str(&format!("  FAIL  {name}: {e}\n")),
        }
    }
    for f in finals.iter().take(30) {
        report.push_str(&format!("  FAIL  final: {f}\n"));
    }
    if finals.len() > 30 {
        report.push_str(&format!(
            "  ... and {} more final failures\n",
            finals.len() - 30
        ));
    }
    eprintln!("hostile input, {} cases:\n{report}", results.len());
    let failed = results.iter().filter(|r| r.1.is_err()).count();
    let mut up = h.up.into_inner();
    up.kill().await;
    let ctx = h.world.context(&[]).await;
    cleanup(&ctx, &h.world).await;
    if failed == 0 && finals.is_empty() {
        let _ = std::fs::remove_file(&log);
    }
    assert!(
        failed == 0 && finals.is_empty(),
        "{failed} of {} cases failed, {} final checks failed (log: {}):\n{report}",
        results.len(),
        finals.len(),
        log.display()
    );
}
