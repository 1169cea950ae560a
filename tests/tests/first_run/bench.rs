//! `awfdrs bench`'s remediation, notifier and loop modes, its JSON report
//! and its preload, run as the README shows them at a tiny size: the real
//! coordinator and scheduler turn every decision into one retry command,
//! the scheduler fires every seeded retry once and never early, the
//! notifier delivers every notification once, the whole loop across worker
//! processes passes its own checks, and every mode's correctness checks
//! hold. Their figures are printed, not asserted.

use awfdrs_tests::{World, cleanup};

use crate::{awfdrs, text};

/// The block of `stdout` that starts with `label`.
fn block<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .split("\n\n")
        .find(|b| b.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} figures: {stdout}"))
}

#[tokio::test]
async fn bench_remediation_and_scheduler_modes_print_their_figures() {
    let world = World::new().await;
    // Not used by the bench, which runs every worker in its own process.
    let addr = "127.0.0.1:9";
    let out = awfdrs(
        &world,
        addr,
        &[
            "bench",
            "--modes",
            "remediation,remediation-max,scheduler",
            "--remediation-rate",
            "20",
            "--remediation-seconds",
            "1",
            "--scheduled",
            "300",
            "--due-over",
            "2s",
            "--schedulers",
            "2",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for label in ["remediation paced 20 decisions/s", "remediation max"] {
        let b = block(&stdout, label);
        assert!(b.contains("retries due at once"), "{b}");
        assert!(b.contains("published  20 decisions"), "{b}");
        assert!(
            b.contains("actions    20 recorded (retry EXECUTING 20)"),
            "every decision one retry, fired: {b}"
        );
        assert!(b.contains("0 paced by a rate limit"), "{b}");
        assert!(b.contains("commands   20 retry commands received"), "{b}");
        assert!(b.contains("; 0 repeated"), "{b}");
        assert!(
            b.contains("decision published -> retry command received  ms p50"),
            "{b}"
        );
    }
    let b = block(&stdout, "scheduler: 300 retries due over 2s, 2 schedulers");
    assert!(b.contains("fired      300 retries"), "{b}");
    assert!(b.contains("0 fired before they were due"), "{b}");
    assert!(b.contains("commands   300 received, 0 repeated"), "{b}");
    assert!(b.contains("lateness   ms p50"), "{b}");
    assert!(b.contains("VmRSS"), "{b}");

    for (bad, says) in [
        (
            &["bench", "--modes", "scheduler", "--due-over", "soon"][..],
            "--due-over",
        ),
        (
            &["bench", "--modes", "scheduler", "--schedulers", "0"],
            "--schedulers",
        ),
    ] {
        let out = awfdrs(&world, addr, bad).await;
        assert!(!out.status.success(), "{bad:?} succeeded");
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}

/// `awfdrs bench --modes notifier` at a tiny size: the real notifier tells
/// both channels of every escalation, each notification once per
/// `webhook-id`, signed, in one try. Its figures are printed, not asserted.
#[tokio::test]
async fn bench_notifier_mode_delivers_every_notification_once() {
    let world = World::new().await;
    let addr = "127.0.0.1:9";
    let out = awfdrs(
        &world,
        addr,
        &[
            "bench",
            "--modes",
            "notifier",
            "--escalations",
            "50",
            "--escalation-rate",
            "100",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let b = block(
        &stdout,
        "notifier: 50 escalations at 100/s, each to 2 channels",
    );
    assert!(b.contains("published  50 escalations"), "{b}");
    assert!(
        b.contains("received   100 notifications of 100"),
        "every escalation told to both channels: {b}"
    );
    assert!(
        b.contains("; 0 repeated webhook-ids, 0 not ours, 0 unverified signatures"),
        "{b}"
    );
    assert!(
        b.contains("recorded   DELIVERED 100 in 100 tries;"),
        "each in one try: {b}"
    );
    assert!(
        b.contains("escalation published -> notification received  ms p50"),
        "{b}"
    );

    let out = awfdrs(
        &world,
        addr,
        &["bench", "--modes", "notifier", "--escalations", "0"],
    )
    .await;
    assert!(!out.status.success(), "--escalations 0 succeeded");
    assert!(
        text(&out.stderr).contains("--escalations"),
        "{}",
        text(&out.stderr)
    );
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}

/// `awfdrs bench --modes loop,loop-2` at a tiny size: every worker its own
/// process (one of each, then two), and the whole loop's checks: every
/// event stored once, one decision and one action per incident, every
/// retry fired and its command received once, every notification delivered
/// once. Its figures are printed, not asserted.
#[tokio::test]
async fn bench_loop_modes_run_the_whole_loop_across_worker_processes() {
    let world = World::new().await;
    let addr = "127.0.0.1:9";
    let out = awfdrs(
        &world,
        addr,
        &[
            "bench",
            "--modes",
            "loop,loop-2",
            "--loop-events",
            "200",
            "--loop-rate",
            "200",
            "--signatures",
            "20",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for (label, processes) in [
        (
            "loop: 200 events at 200/s over 20 signatures, 1 process of each worker",
            1,
        ),
        (
            "loop: 200 events at 200/s over 20 signatures, 2 processes of each worker",
            2,
        ),
    ] {
        let b = block(&stdout, label);
        assert!(b.contains("sent       200 events"), "{b}");
        assert!(b.contains(", 0 refused"), "{b}");
        assert!(
            b.contains("each once: yes; 20 incidents of 20 signatures"),
            "every event stored once, one incident per signature: {b}"
        );
        assert!(
            b.contains(
                "decided    0 incidents with other than one decision, 0 with other than one action"
            ),
            "{b}"
        );
        assert!(
            b.contains("retried    12 retries fired of 12; 12 retry commands received, 0 repeated"),
            "{b}"
        );
        assert!(
            b.contains(
                "notified   8 notifications of 8 escalations, 8 delivered in 8 tries; 8 received, \
                 0 repeated webhook-ids, 0 unverified"
            ),
            "{b}"
        );
        for hop in [
            "event published -> committed",
            "incident opened -> decision recorded",
            "decision recorded -> action recorded",
            "action recorded -> retry command fired",
            "escalation -> notification delivered",
        ] {
            assert!(b.contains(hop), "{hop}: {b}");
        }
        for worker in [
            "detector",
            "analyzer",
            "coordinator",
            "scheduler",
            "notifier",
        ] {
            for i in 1..=processes {
                assert!(b.contains(&format!("worker     {worker} #{i} ")), "{b}");
            }
        }
        assert!(b.contains("every worker under 40 MiB resident"), "{b}");
    }
    assert!(
        block(
            &stdout,
            "loop: 200 events at 200/s over 20 signatures, 2 processes"
        )
        .contains("scale-out"),
        "{stdout}"
    );

    let out = awfdrs(
        &world,
        addr,
        &["bench", "--modes", "loop", "--processes", "0"],
    )
    .await;
    assert!(!out.status.success(), "--processes 0 succeeded");
    assert!(
        text(&out.stderr).contains("--processes"),
        "{}",
        text(&out.stderr)
    );
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}

/// `awfdrs bench --modes storm` at a small size: a vendor outage across 100
/// runs through every worker as its own process; the breaker opens on its
/// own, no retry fires into it, the held retries end, the released ones
/// stay within the vendor's rate, every incident resolves, every command
/// arrives once. Its timings are printed, not asserted.
#[tokio::test]
async fn bench_storm_mode_holds_then_paces_the_retries_of_a_vendor_outage() {
    let world = World::new().await;
    let addr = "127.0.0.1:9";
    let out = awfdrs(
        &world,
        addr,
        &["bench", "--modes", "storm", "--storm-runs", "100"],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let b = block(
        &stdout,
        "storm: 100 runs of 4 tenants fail on stormpay at once, 1 process of each worker",
    );
    assert!(b.contains("outage     100 failures published"), "{b}");
    assert!(!b.contains("the breaker opened never"), "{b}");
    assert!(b.contains(" not ended; "), "{b}");
    assert!(b.contains(", 0 not ended;"), "every hold ended: {b}");
    assert!(b.contains(", 0 into an open breaker,"), "{b}");
    assert!(b.contains("100 of 100 incidents resolved"), "{b}");
    assert!(b.contains("retry commands received, 0 repeated"), "{b}");
    assert!(b.contains(", 0 failed"), "{b}");
    assert!(b.contains("vendor back -> retry fired"), "{b}");
    for worker in [
        "detector",
        "analyzer",
        "coordinator",
        "scheduler",
        "notifier",
    ] {
        assert!(b.contains(&format!("worker     {worker} #1 ")), "{b}");
    }
    assert!(!stdout.contains("check failed"), "{stdout}");

    let out = awfdrs(
        &world,
        addr,
        &["bench", "--modes", "storm", "--storm-runs", "10"],
    )
    .await;
    assert!(!out.status.success(), "--storm-runs 10 succeeded");
    assert!(
        text(&out.stderr).contains("--storm-runs"),
        "{}",
        text(&out.stderr)
    );
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}

/// `awfdrs bench --json --preload N` at a tiny size: one JSON document on
/// stdout with the machine, the preload, what the stored events take, and
/// per mode its rate, ratio to the ceiling, latency, CPU per event, memory
/// and correctness checks, all of which hold.
#[tokio::test]
async fn bench_json_reports_every_mode_and_the_grown_database() {
    let world = World::new().await;
    let addr = "127.0.0.1:9";
    let out = awfdrs(
        &world,
        addr,
        &[
            "bench",
            "--json",
            "--preload",
            "3000",
            "--events",
            "300",
            "--warmup",
            "100",
            "--modes",
            "ceiling,nats-max,http-batch",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not one JSON document: {e}\n{stdout}"));
    let machine = &report["machine"];
    assert!(
        machine["cores"].as_u64().is_some_and(|c| c > 0),
        "{machine}"
    );
    for field in ["kernel", "postgresql", "nats_server"] {
        assert!(
            machine[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}: {machine}"
        );
    }
    assert_eq!(report["preload"]["events"], 3000, "{report:#}");
    assert!(
        report["preload"]["per_second"]
            .as_f64()
            .is_some_and(|r| r > 0.0)
    );
    let storage = report["storage"].as_array().expect("storage");
    assert_eq!(
        storage.len(),
        2,
        "after the preload and at the end: {storage:?}"
    );
    assert_eq!(storage[0]["when"], "after preload");
    assert_eq!(storage[0]["events"], 3000);
    assert_eq!(storage[0]["ingest_keys"], 3000);
    // The preload, the warm-up and both pipeline modes (the ceiling's bare
    // table is not an events table).
    assert_eq!(storage[1]["events"], 3000 + 100 + 300 + 300, "{storage:?}");
    for s in storage {
        assert!(
            s["bytes_per_event"].as_f64().is_some_and(|b| b > 100.0),
            "{s}"
        );
    }

    let modes = report["modes"].as_array().expect("modes");
    let names: Vec<&str> = modes.iter().filter_map(|m| m["mode"].as_str()).collect();
    assert_eq!(names, ["ceiling", "nats-max", "http-batch"]);
    for m in modes {
        assert_eq!(m["count"], 300, "{m:#}");
        assert!(m["per_second"].as_f64().is_some_and(|r| r > 0.0), "{m:#}");
        assert!(
            m["cpu"]["ms_per_event"]["awfdrs"].as_f64().is_some(),
            "{m:#}"
        );
        assert!(
            m["memory"]["rss_mib"].as_f64().is_some_and(|r| r > 0.0),
            "{m:#}"
        );
        let checks = m["checks"].as_array().expect("checks");
        assert!(checks.len() >= 2, "{m:#}");
        for c in checks {
            assert_eq!(c["ok"], true, "{}: {c}", m["mode"]);
        }
        if m["mode"] == "ceiling" {
            assert!(m["of_ceiling"].is_null(), "{m:#}");
        } else {
            assert!(m["of_ceiling"].as_f64().is_some_and(|r| r > 0.0), "{m:#}");
            for q in ["p50", "p95", "p99", "max"] {
                assert!(m["latency_ms"][q].as_f64().is_some(), "{q}: {m:#}");
            }
            assert!(
                checks
                    .iter()
                    .any(|c| c["name"] == "incidents count every failure once"),
                "{m:#}"
            );
        }
    }
    assert_eq!(report["checks_passed"], true);

    // The table says what the stored events take too, run as the
    // README's `--preload` line.
    let out = awfdrs(
        &world,
        addr,
        &[
            "bench",
            "--preload",
            "200",
            "--events",
            "100",
            "--warmup",
            "0",
            "--modes",
            "nats-max",
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("cpu ms per event"), "{stdout}");
    assert!(stdout.contains("  preloaded  200 events in"), "{stdout}");
    assert!(
        stdout.contains("storage    after preload: 200 events, 200 idempotency keys;"),
        "{stdout}"
    );
    assert!(
        stdout.contains("storage    at the end: 300 events, 300 idempotency keys;"),
        "{stdout}"
    );
    assert!(stdout.contains("bytes per stored event"), "{stdout}");
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}

/// `scripts/callgrind` is only checked here (its full run builds a
/// profiling binary and takes minutes): it parses, says how it is used and
/// refuses bad arguments.
#[test]
fn the_callgrind_script_explains_itself_and_refuses_bad_arguments() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/callgrind");
    let run = |args: &[&str]| {
        std::process::Command::new("bash")
            .arg(script)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run bash")
    };
    let syntax = std::process::Command::new("bash")
        .args(["-n", script])
        .output()
        .expect("run bash -n");
    assert!(syntax.status.success(), "{}", text(&syntax.stderr));
    let help = run(&["--help"]);
    assert!(help.status.success(), "{}", text(&help.stderr));
    let help = text(&help.stdout);
    assert!(help.contains("Instructions per event"), "{help}");
    assert!(help.contains("scripts/callgrind --only detector"), "{help}");
    for (bad, says) in [
        (&["--events", "0"][..], "--events"),
        (&["--only", "analyzer"], "--only"),
        (&["--bogus"], "unknown argument"),
    ] {
        let out = run(bad);
        assert!(!out.status.success(), "{bad:?} succeeded");
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
}
