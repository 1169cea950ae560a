//! The worker harness, on every start path: a worker never stops silently,
//! SIGTERM drains and exits 0, and a process holds one KV watch per bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use awfdrs_bus::Stage;
use awfdrs_runtime::Harness;
use awfdrs_telemetry::TaskState;
use awfdrs_tests::{World, awfdrs_bin, cleanup, eventually, free_port};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_worker_whose_consumer_is_deleted_under_it_fails_the_process_visibly() {
    let world = World::new().await;
    let ctx = world.context(&[]).await;
    let shutdown = CancellationToken::new();
    let harness = Harness::start(ctx.clone(), shutdown.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    awfdrs_gateway::start_on(&harness, listener).unwrap();
    awfdrs_detector::start(&harness).await.unwrap();
    let process = tokio::spawn(harness.run());
    eventually(WAIT, "the detector's consumer", || async {
        ctx.bus.consumer_backlog(Stage::Detector).await.ok()
    })
    .await;

    // Deleting the stream deletes its consumers with it.
    ctx.bus.delete_streams().await.unwrap();
    let ended = tokio::time::timeout(WAIT, process)
        .await
        .expect("the process noticed that its consumer is gone")
        .unwrap();
    let error = format!(
        "{:#}",
        ended.expect_err("the process ends with an error, not Ok")
    );
    assert!(
        error.contains("detector.consumer.0") && error.contains("consumer"),
        "the error names the task and its consumer: {error}"
    );
    // The failure stopped the rest of the process (the gateway) too, and
    // stays visible in the health /ready reports.
    assert!(shutdown.is_cancelled());
    match &ctx.health.snapshot()["detector.consumer.0"] {
        TaskState::Failed(reason) => assert!(reason.contains("consumer"), "{reason}"),
        other => panic!("the consumer loop is failed, not {other:?}"),
    }
    cleanup(&ctx, &world).await;
}

/// A process of the real binaries, with its log.
struct Process {
    child: Child,
    log: PathBuf,
    /// Where its `/api/v1/ready` and `/metrics` are served.
    ops: String,
}

impl Process {
    /// Starts `program args` for `world`; HTTP and operations endpoints on
    /// free ports.
    fn spawn(world: &World, program: &str, args: &[&str]) -> Self {
        let (http, metrics) = (free_port(), free_port());
        let serves_http = program == "gateway" || args.contains(&"up") || args.contains(&"gateway");
        let ops = format!(
            "http://127.0.0.1:{}",
            if serves_http { http } else { metrics }
        );
        let log = std::env::temp_dir().join(format!(
            "awfdrs-harness-{}-{program}-{}.log",
            world.namespace,
            args.join("-")
        ));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let bin = awfdrs_bin().with_file_name(program);
        let child = Command::new(&bin)
            .args(args)
            .env_clear()
            .envs(world.env(&[
                ("AWFDRS_HTTP_ADDR", &format!("127.0.0.1:{http}")),
                (
                    "AWFDRS__TELEMETRY__METRICS_ADDR",
                    &format!("127.0.0.1:{metrics}"),
                ),
                ("AWFDRS__SHUTDOWN__GRACE_SECS", "5"),
            ]))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        Self { child, log, ops }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.ops))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()?;
        Some((r.status().as_u16(), r.text().await.unwrap_or_default()))
    }

    async fn wait_ready(&mut self) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("exited ({status}) before ready:\n{}", self.output());
            }
            if matches!(self.get("/api/v1/ready").await, Some((200, _))) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not ready in time:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit after SIGTERM:\n{}", self.output()))
            .unwrap()
    }
}

/// The value of `awfdrs_kv_watches{bucket="<bucket>"}` in a scrape.
fn kv_watches(scrape: &str, bucket: &str) -> Option<i64> {
    let prefix = format!("awfdrs_kv_watches{{bucket=\"{bucket}\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn every_start_path_holds_one_breakers_watch_and_drains_on_sigterm() {
    let world = World::new().await;
    let ctx = world.context(&[]).await;
    let paths: [(&str, &[&str]); 13] = [
        ("awfdrs", &["up"]),
        ("awfdrs", &["worker", "gateway"]),
        ("awfdrs", &["worker", "detector"]),
        ("awfdrs", &["worker", "analyzer"]),
        ("awfdrs", &["worker", "coordinator"]),
        ("awfdrs", &["worker", "scheduler"]),
        ("awfdrs", &["worker", "notifier"]),
        ("gateway", &[]),
        ("detector", &[]),
        ("analyzer", &[]),
        ("coordinator", &[]),
        ("scheduler", &[]),
        ("notifier", &[]),
    ];
    for (program, args) in paths {
        let what = format!("{program} {}", args.join(" "));
        let mut process = Process::spawn(&world, program, args);
        process.wait_ready().await;
        let (status, scrape) = process.get("/metrics").await.expect("metrics");
        assert_eq!(status, 200, "{what}");
        assert_eq!(
            kv_watches(&scrape, "breakers"),
            Some(1),
            "{what}: one watch of the breakers' bucket per process:\n{scrape}"
        );
        let (_, ready) = process.get("/api/v1/ready").await.unwrap();
        let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
        assert!(
            ready["tasks"]
                .as_object()
                .is_some_and(|t| !t.is_empty() && t.values().all(|v| v == "ok")),
            "{what}: /ready lists the process's tasks: {ready}"
        );
        let status = process.terminate().await;
        let output = process.output();
        assert_eq!(
            status.code(),
            Some(0),
            "{what} exits 0 on SIGTERM:\n{output}"
        );
        assert!(
            output.contains("draining") && output.contains("stopped"),
            "{what} drains before it exits:\n{output}"
        );
    }
    cleanup(&ctx, &world).await;
}

#[tokio::test]
async fn awfdrs_up_exits_non_zero_when_a_consumer_is_deleted_under_it() {
    let world = World::new().await;
    let ctx = world.context(&[]).await;
    let mut process = Process::spawn(&world, "awfdrs", &["up"]);
    process.wait_ready().await;
    ctx.bus.delete_streams().await.unwrap();
    let status = tokio::time::timeout(WAIT, process.child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "awfdrs up went on without its consumer:\n{}",
                process.output()
            )
        })
        .unwrap();
    let output = process.output();
    assert_ne!(status.code(), Some(0), "{output}");
    assert!(
        [
            "detector.consumer.0",
            "analyzer.consumer",
            "coordinator.consumer"
        ]
        .iter()
        .any(|task| output.contains(task))
            && output.contains("task failed"),
        "the log names the failed task:\n{output}"
    );
    cleanup(&ctx, &world).await;
}
