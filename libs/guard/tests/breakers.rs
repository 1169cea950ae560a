//! The shared breakers against real NATS JetStream KV and Postgres: no lost
//! update and one recorded transition per change, from many tasks and from
//! two processes; a killed probe holder does not strand the breaker; every
//! worker's view follows the others' writes.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use awfdrs_guard::{Admission, BreakerState, Outcomes, ProbeResult};
use awfdrs_safety::breaker::source_id;
use common::{World, eventually, nats_url};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Barrier;
use tokio_util::sync::CancellationToken;

const TASKS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tasks_on_one_breaker_lose_no_update_and_make_each_transition_once() {
    let w = World::new().await;
    let breakers = w.breakers("w1").await;
    let vendor = "acme-pay";
    let rounds = 40;

    // Half the calls fail, from eight sources: the breaker opens once the
    // window holds 200 calls, while the other merges keep arriving.
    let opened = race(TASKS, |task| {
        let b = breakers.clone();
        async move {
            let outcomes = Outcomes {
                successes: 1,
                failures: 1,
                sources: vec![source_id(&format!("tenant-{task}"))],
            };
            let mut made = 0;
            for _ in 0..rounds {
                made += usize::from(b.record(vendor, &outcomes, "test").await.unwrap().is_some());
            }
            made
        }
    })
    .await;
    assert_eq!(opened, 1, "exactly one merge opens the breaker");
    let view = breakers.fetch(vendor).await.unwrap();
    assert_eq!(view.state, BreakerState::Open);
    let calls = 2 * rounds * TASKS as u64;
    assert_eq!(
        (view.calls, view.failures),
        (calls, calls / 2),
        "no merge lost"
    );

    let resets = race(TASKS, |_| {
        let b = breakers.clone();
        async move { usize::from(b.reset(vendor, "alice").await.unwrap().is_some()) }
    })
    .await;
    assert_eq!(resets, 1, "one of the racing resets closes it");
    let forced = race(TASKS, |_| {
        let b = breakers.clone();
        async move {
            usize::from(
                b.force_open(vendor, "bob", "vendor incident")
                    .await
                    .unwrap()
                    .is_some(),
            )
        }
    })
    .await;
    assert_eq!(forced, 1, "one of the racing force-opens opens it");

    let states: Vec<_> = w
        .transitions(vendor)
        .await
        .into_iter()
        .map(|(from, to, actor, _)| (from, to, actor))
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        states,
        vec![
            s("CLOSED", "OPEN", "test"),
            s("OPEN", "CLOSED", "operator:alice"),
            s("CLOSED", "OPEN", "operator:bob"),
        ]
    );
    let rendered = w.metrics.render();
    assert!(rendered.contains(
        "awfdrs_breaker_transitions_total{vendor=\"acme-pay\",from=\"CLOSED\",to=\"OPEN\"} 2"
    ));
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_breaker_lose_no_update_and_make_each_transition_once() {
    let w = World::new().await;
    let breakers = w.breakers("w1").await;
    let vendor = "acme-pay";

    let runs = both(
        &w,
        &[
            "record", "--vendor", vendor, "--tasks", "4", "--rounds", "50",
        ],
        ["p1", "p2"],
    )
    .await;
    let made: u64 = runs
        .iter()
        .map(|r| r["transitions"].as_u64().unwrap())
        .sum();
    let calls: u64 = runs.iter().map(|r| r["calls"].as_u64().unwrap()).sum();
    let conflicts: u64 = runs.iter().map(|r| r["conflicts"].as_u64().unwrap()).sum();
    println!("two processes: {calls} calls merged with {conflicts} compare-and-set conflicts");
    assert_eq!(
        made, 1,
        "exactly one merge, in one process, opens the breaker"
    );
    let view = breakers.fetch(vendor).await.unwrap();
    assert_eq!(view.state, BreakerState::Open);
    assert_eq!(
        (view.calls, view.failures),
        (calls, calls / 2),
        "no merge lost"
    );

    let resets = both(&w, &["reset", "--vendor", vendor], ["p1", "p2"]).await;
    assert_eq!(
        resets
            .iter()
            .map(|r| r["transitions"].as_u64().unwrap())
            .sum::<u64>(),
        1
    );
    let forced = both(&w, &["force-open", "--vendor", vendor], ["p1", "p2"]).await;
    assert_eq!(
        forced
            .iter()
            .map(|r| r["transitions"].as_u64().unwrap())
            .sum::<u64>(),
        1
    );

    let rows = w.transitions(vendor).await;
    let states: Vec<_> = rows
        .iter()
        .map(|(f, t, _, _)| (f.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        states,
        [("CLOSED", "OPEN"), ("OPEN", "CLOSED"), ("CLOSED", "OPEN")]
    );
    assert!(
        rows[1].2.starts_with("operator:p"),
        "attributed: {:?}",
        rows[1]
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_holder_killed_with_sigkill_does_not_leave_the_breaker_half_open() {
    let w = World::new().await;
    let breakers = w.breakers("w1").await;
    let shutdown = CancellationToken::new();
    let background = breakers.spawn(shutdown.clone());
    let vendor = "flaky";
    let storm = Outcomes {
        successes: 0,
        failures: 20,
        sources: vec![1, 2],
    };
    assert!(
        breakers
            .record(vendor, &storm, "test")
            .await
            .unwrap()
            .is_some()
    );
    let half_open = || async {
        (breakers.check(vendor, awfdrs_guard::now()) == Admission::Probe).then_some(())
    };
    eventually(
        "the breaker to half-open",
        Duration::from_secs(5),
        half_open,
    )
    .await;

    let mut holder = tokio::process::Command::new(env!("CARGO_BIN_EXE_guard-load"))
        .args(load_args(&w, "doomed"))
        .args(["probe", "--vendor", vendor, "--holder", "doomed"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let said: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(
        said["acquired"], true,
        "the holder took the only probe slot"
    );
    holder.start_kill().unwrap(); // SIGKILL
    holder.wait().await.unwrap();

    // The lost probe's slot expires after probe_timeout (1 s): the breaker
    // reopens, then half-opens again with a free slot.
    let lost = eventually(
        "the lost probe to reopen the breaker",
        Duration::from_secs(5),
        || async {
            w.transitions(vendor)
                .await
                .into_iter()
                .find(|(from, to, _, _)| from == "HALF_OPEN" && to == "OPEN")
        },
    )
    .await;
    assert_eq!(lost.2, "clock:w1");
    assert!(
        lost.3.contains("probe by doomed did not report"),
        "{}",
        lost.3
    );
    eventually("a free probe slot again", Duration::from_secs(5), half_open).await;
    let grant = breakers.try_acquire_probe(vendor, "healthy").await.unwrap();
    assert!(grant.is_some());
    let closed = breakers
        .report_probe(vendor, "healthy", ProbeResult::Success)
        .await
        .unwrap();
    assert_eq!(closed.map(|t| t.to), Some(BreakerState::Closed));
    assert_eq!(
        breakers.check(vendor, awfdrs_guard::now()),
        Admission::Allow
    );

    shutdown.cancel();
    background.await.unwrap();
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workers_view_follows_the_writes_of_the_others() {
    let w = World::new().await;
    let watcher = w.breakers("w1").await;
    let shutdown = CancellationToken::new();
    let background = watcher.spawn(shutdown.clone());
    let operator = w.breakers("cli").await;
    assert_eq!(
        watcher.check("stripe", awfdrs_guard::now()),
        Admission::Allow
    );

    operator
        .force_open("stripe", "carol", "maintenance")
        .await
        .unwrap();
    eventually(
        "the watcher to see the kill switch",
        Duration::from_secs(5),
        || async {
            (watcher.check("stripe", awfdrs_guard::now()) == Admission::Deny { until: None })
                .then_some(())
        },
    )
    .await;
    let listed = watcher.list(awfdrs_guard::now());
    let stripe = listed.iter().find(|b| b.vendor == "stripe").unwrap();
    assert_eq!(stripe.forced_reason.as_deref(), Some("maintenance"));
    assert!(
        listed
            .iter()
            .any(|b| b.vendor == "flaky" && b.state == BreakerState::Closed)
    );

    operator.reset("stripe", "carol").await.unwrap();
    eventually(
        "the watcher to see the reset",
        Duration::from_secs(5),
        || async {
            (watcher.check("stripe", awfdrs_guard::now()) == Admission::Allow).then_some(())
        },
    )
    .await;
    shutdown.cancel();
    background.await.unwrap();
    w.finish().await;
}

/// Runs `n` copies of `f` released together, and sums what they return.
async fn race<F, Fut>(n: usize, f: F) -> usize
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = usize> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, work) = (Arc::clone(&barrier), f(i));
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    sum
}

fn load_args(w: &World, worker: &str) -> Vec<String> {
    let rules = w.rules_path().to_string_lossy().into_owned();
    [
        "--nats",
        &nats_url(),
        "--database",
        &w.db_url,
        "--namespace",
        &w.ns,
        "--rules",
        &rules,
        "--worker",
        worker,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs guard-load with `args` as two processes at once; their JSON reports.
async fn both(w: &World, args: &[&str], workers: [&str; 2]) -> Vec<Value> {
    let run = |worker: &str| {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_guard-load"))
            .args(load_args(w, worker))
            .args(args)
            .kill_on_drop(true)
            .output();
        async move {
            let out = out.await.unwrap();
            assert!(
                out.status.success(),
                "guard-load failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        }
    };
    let (a, b) = tokio::join!(run(workers[0]), run(workers[1]));
    vec![a, b]
}
