//! The notifier as a real process, SIGKILLed at moments picked at random
//! while escalations stream through it, and restarted: every (incident,
//! channel) is delivered, and a receiver deduplicating by `webhook-id` sees
//! each notification exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use awfdrs_tests::{World, awfdrs_bin, cleanup, count, eventually, failure, free_port};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::support::Receiver;

const WAIT: Duration = Duration::from_secs(180);
const N: i64 = 500;

/// A pseudo-random pause of 100–900 ms, from a seed that changes each run
/// (and is printed, so a failing run can be told apart).
fn pause(seed: &mut u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    Duration::from_millis(100 + *seed % 800)
}

#[tokio::test]
async fn a_notifier_killed_at_random_delivers_each_notification_once_per_webhook_id() {
    let world = World::new().await;
    let extra = [
        ("AWFDRS__NOTIFICATIONS__BATCH_SIZE", "5"),
        ("AWFDRS__CONSUMER__ACK_WAIT_SECS", "3"),
        // A try cut short by a kill is taken again once its lease ends.
        ("AWFDRS__NOTIFICATIONS__TIMEOUT_MS", "1000"),
    ];
    let ctx = world.context(&extra).await;
    let key = awfdrs_domain::new_api_key();
    let tenant = ctx.store.create_tenant("acme", &key).await.unwrap();
    let receivers = [Receiver::start(&[]).await, Receiver::start(&[]).await];
    for (i, r) in receivers.iter().enumerate() {
        ctx.store
            .add_channel(&awfdrs_store::NewChannel {
                tenant_id: tenant.id,
                name: &format!("ops-{i}"),
                kind: "webhook",
                url: &r.url,
                secret: &awfdrs_domain::webhook::new_secret(),
                min_severity: "low",
                routing_key: None,
                level: 1,
                escalate_after_ms: None,
                rate_per_minute: None,
            })
            .await
            .unwrap();
    }
    // Everything up to the escalations runs in-process; the notifier is
    // the real binary.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let upstream = awfdrs_runtime::Harness::start(ctx.clone(), shutdown.clone()).unwrap();
    awfdrs_detector::start(&upstream).await.unwrap();
    awfdrs_analyzer::start(&upstream).await.unwrap();
    awfdrs_coordinator::start(&upstream).await.unwrap();
    let upstream = tokio::spawn(upstream.run());
    let spawn = || -> Child {
        let addr = format!("127.0.0.1:{}", free_port());
        Command::new(awfdrs_bin().with_file_name("notifier"))
            .env_clear()
            .envs(world.env(&extra))
            .env("AWFDRS__TELEMETRY__METRICS_ADDR", addr)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut notifier = spawn();
    for i in 0..N {
        let mut e = failure(&format!("k{i}"), &format!("flow-{i}"), "invalid_api_key");
        e["workflow_run_id"] = json!(format!("run-{i}"));
        e.as_object_mut().unwrap().remove("vendor");
        ctx.bus
            .publish(awfdrs_bus::Outgoing {
                subject: ctx.bus.ns().events_subject("acme", &format!("flow-{i}")),
                msg_id: format!("k{i}"),
                correlation_id: None,
                headers: Vec::new(),
                payload: bytes::Bytes::from(e.to_string()),
            })
            .await
            .unwrap();
    }
    let pool = ctx.store.pool().clone();
    let mut seed = u64::from(std::process::id()) << 20 | 0x51f3;
    eprintln!("kill seed {seed}");
    for _ in 0..4 {
        tokio::time::sleep(pause(&mut seed)).await;
        notifier.start_kill().unwrap();
        let _ = notifier.wait().await;
        notifier = spawn();
    }
    eventually(WAIT, "every notification delivered", || async {
        (count(
            &pool,
            "SELECT count(*) FROM notifications WHERE status = 'DELIVERED'",
        )
        .await
            == 2 * N)
            .then_some(())
    })
    .await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM notifications").await,
        2 * N
    );
    for r in &receivers {
        // Deduplicated by webhook-id: one per incident, each body the same
        // on every delivery of its id.
        let mut by_id: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
        for got in r.got() {
            by_id
                .entry(got.header("webhook-id"))
                .or_default()
                .insert(got.body.clone());
        }
        assert_eq!(by_id.len() as i64, N, "one webhook-id per incident");
        assert!(
            by_id.values().all(|bodies| bodies.len() == 1),
            "one body per id"
        );
        let incidents: BTreeSet<String> = by_id
            .values()
            .map(|b| {
                let v: serde_json::Value = serde_json::from_slice(b.first().unwrap()).unwrap();
                v["incident"]["id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(incidents.len() as i64, N, "each incident once");
    }
    notifier.start_kill().unwrap();
    let _ = notifier.wait().await;
    shutdown.cancel();
    let _ = upstream.await;
    cleanup(&ctx, &world).await;
}
