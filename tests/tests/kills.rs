//! The coordinator and the scheduler as real processes, SIGKILLed at
//! moments picked at random while decisions and due retries stream through
//! them, and restarted: every incident ends with one retry action, fired
//! once, and the commands stream holds one command per action and attempt.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_bus::Topic;
use awfdrs_tests::{
    World, awfdrs_bin, cleanup, count, eventually, failure, free_port, rules_edited,
};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(180);
const N: i64 = 100;

/// A pseudo-random pause of 100–900 ms, from a seed that changes each run
/// (and is printed, so a failing run can be told apart).
fn pause(seed: &mut u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    Duration::from_millis(100 + *seed % 800)
}

#[tokio::test]
async fn a_coordinator_and_a_scheduler_killed_at_random_make_no_action_or_command_twice() {
    // Retries due one second after their decision, exactly.
    let rules = rules_edited(&[(
        "retry_policies.yaml",
        "    initial_delay: 10s
    multiplier: 3
    max_delay: 5m
    max_attempts: 4",
        "    initial_delay: 1s
    multiplier: 3
    jitter: false
    max_delay: 5m
    max_attempts: 4",
    )]);
    let world = World::new().await;
    let extra = [
        ("AWFDRS__RULES__DIR", rules.to_str().unwrap()),
        ("AWFDRS__COORDINATOR__BATCH_SIZE", "5"),
        ("AWFDRS__SCHEDULER__BATCH_SIZE", "5"),
        ("AWFDRS__CONSUMER__ACK_WAIT_SECS", "3"),
        ("AWFDRS__OUTBOX__SWEEP_MS", "200"),
    ];
    let ctx = world.context(&extra).await;
    let key = awfdrs_domain::new_api_key();
    ctx.store.create_tenant("acme", &key).await.unwrap();
    // The detector and the analyzer run in-process; the coordinator and
    // the scheduler are the real binaries.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let upstream = awfdrs_runtime::Harness::start(ctx.clone(), shutdown.clone()).unwrap();
    awfdrs_detector::start(&upstream).await.unwrap();
    awfdrs_analyzer::start(&upstream).await.unwrap();
    let upstream = tokio::spawn(upstream.run());
    let spawn = |name: &str| -> Child {
        let port = free_port().to_string();
        let addr = format!("127.0.0.1:{port}");
        Command::new(awfdrs_bin().with_file_name(name))
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
    let mut coordinator = spawn("coordinator");
    let mut scheduler = spawn("scheduler");
    for i in 0..N {
        let mut e = failure(&format!("k{i}"), &format!("flow-{i}"), "payment_timeout");
        e["workflow_run_id"] = format!("run-{i}").into();
        // No vendor: no breaker opens on the flood, so each becomes a retry.
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
    let mut seed = u64::from(std::process::id()) << 20 | 0x9e37;
    eprintln!("kill seed {seed}");
    for round in 0..4 {
        tokio::time::sleep(pause(&mut seed)).await;
        let victim = if round % 2 == 0 {
            &mut coordinator
        } else {
            &mut scheduler
        };
        victim.start_kill().unwrap();
        let _ = victim.wait().await;
        *victim = spawn(if round % 2 == 0 {
            "coordinator"
        } else {
            "scheduler"
        });
    }
    eventually(WAIT, "every retry fired", || async {
        (count(
            &pool,
            "SELECT count(*) FROM actions WHERE kind = 'retry' AND status = 'EXECUTING'",
        )
        .await
            == N)
            .then_some(())
    })
    .await;
    eventually(WAIT, "every retry command published", || async {
        (count(
            &pool,
            "SELECT count(*) FROM outbox WHERE msg_id LIKE 'retry:%' AND published_at IS NOT NULL",
        )
        .await
            == N)
            .then_some(())
    })
    .await;
    // One action per incident, one command per action and attempt: the
    // stream holds what consumers of retry commands get.
    assert_eq!(count(&pool, "SELECT count(*) FROM actions").await, N);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM (SELECT incident_id FROM actions GROUP BY 1 HAVING count(*) > 1) d"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM outbox WHERE msg_id LIKE 'retry:%'"
        )
        .await,
        N
    );
    assert_eq!(ctx.bus.stored(Topic::Commands).await.unwrap(), N as u64);
    let fired_twice = count(
        &pool,
        "SELECT count(*) FROM (SELECT action_id FROM action_transitions
                               WHERE to_status = 'EXECUTING' GROUP BY 1 HAVING count(*) > 1) d",
    )
    .await;
    assert_eq!(fired_twice, 0);
    for mut p in [coordinator, scheduler] {
        p.start_kill().unwrap();
        let _ = p.wait().await;
    }
    shutdown.cancel();
    let _ = upstream.await;
    cleanup(&ctx, &world).await;
    let _ = std::fs::remove_dir_all(rules);
}
