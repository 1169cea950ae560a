//! `scripts/nats-cluster`, which the README and deploy/README.md show for
//! measuring against three nodes: it starts a 3-node JetStream cluster on
//! loopback ports and prints the environment that points awfdrs at it;
//! the streams are created R3 there and keep taking publishes when a node
//! is killed; `stop` stops the nodes and removes their stores.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use awfdrs_bus::{Bus, Namespace, Outgoing, Topic};
use awfdrs_tests::private::PrivateNats;
use bytes::Bytes;

use crate::{REPO, text};

/// A port base of the test's own, away from a developer's cluster.
const BASE: u16 = 4371;

fn script(args: &[&str]) -> Output {
    let bin = PrivateNats::binary().expect("a nats-server 2.10 or later for the cluster");
    Command::new(PathBuf::from(REPO).join("scripts/nats-cluster"))
        .args(args)
        .current_dir(REPO)
        .env("AWFDRS_CLUSTER_PORT", BASE.to_string())
        .env("AWFDRS_NATS_SERVER_BIN", bin)
        .output()
        .expect("run scripts/nats-cluster")
}

/// Stops the cluster however the test ends.
struct Stop;

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = script(&["stop"]);
    }
}

async fn publish(bus: &Bus, i: u32) -> bool {
    let msg = Outgoing {
        subject: bus.ns().events_subject("acme", "checkout"),
        msg_id: format!("cluster-{i}"),
        correlation_id: None,
        headers: Vec::new(),
        payload: Bytes::from_static(b"{}"),
    };
    bus.publish(msg).await.is_ok()
}

#[tokio::test]
async fn the_loopback_cluster_runs_r3_streams_that_survive_a_node() {
    let dir = PathBuf::from(REPO).join(format!(".services/cluster-{BASE}"));
    let _stop = Stop;
    let started = script(&["start"]);
    let (stdout, stderr) = (text(&started.stdout), text(&started.stderr));
    assert!(started.status.success(), "{stdout}\n{stderr}");
    let url = format!(
        "nats://127.0.0.1:{},nats://127.0.0.1:{},nats://127.0.0.1:{}",
        BASE,
        BASE + 1,
        BASE + 2
    );
    assert_eq!(
        stdout,
        format!("export NATS_URL={url}\nexport AWFDRS__NATS__REPLICAS=3\n"),
        "{stderr}"
    );
    // Started again, it reuses the running nodes.
    let again = script(&["start"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("already runs"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(text(&again.stdout), stdout);

    let ns = Namespace::new(format!("cluster{}", std::process::id())).expect("a namespace");
    let bus = Bus::connect(&url, ns, 3, Duration::from_secs(10), Duration::from_secs(5))
        .await
        .expect("connect to the cluster");
    bus.declare_streams().await.expect("R3 streams declared");
    assert!(publish(&bus, 0).await, "publish to the cluster");
    assert_eq!(bus.stored(Topic::Events).await.expect("stored"), 1);

    // One node killed: the other two keep a quorum, and the client moves.
    let pid = std::fs::read_to_string(dir.join("node-0.pid")).expect("node 0's pid");
    let killed = Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .expect("kill node 0");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !publish(&bus, 1).await {
        assert!(
            Instant::now() < deadline,
            "no publish within 30 s of a node's loss"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(bus.stored(Topic::Events).await.expect("stored"), 2);
    let _ = bus.delete_streams().await;

    let stopped = script(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    assert!(!dir.exists(), "the stores were removed");
    let env = script(&["env"]);
    assert!(!env.status.success(), "env succeeded with no cluster");
    assert!(
        text(&env.stderr).contains("not running"),
        "{}",
        text(&env.stderr)
    );
    let bad = Command::new(PathBuf::from(REPO).join("scripts/nats-cluster"))
        .arg("start")
        .env("AWFDRS_CLUSTER_PORT", "80")
        .output()
        .expect("run scripts/nats-cluster");
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("AWFDRS_CLUSTER_PORT"),
        "{}",
        text(&bad.stderr)
    );
}
