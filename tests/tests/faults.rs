//! Fault tests with the real `awfdrs` binary: SIGKILL in the middle of a
//! batch loses and duplicates nothing; SIGTERM drains and exits 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use awfdrs_bus::{Outgoing, Stage};
use awfdrs_tests::{World, awfdrs_bin, cleanup, eventually, failure, success};
use bytes::Bytes;
use tokio::process::{Child, Command};

fn detector(world: &World, extra: &[(&str, &str)]) -> Child {
    Command::new(awfdrs_bin())
        .args(["worker", "detector"])
        .env_clear()
        .envs(world.env(extra))
        .env("RUST_LOG", "warn")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn awfdrs worker detector")
}

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn sigkill_mid_batch_then_restart_persists_every_event_exactly_once() {
    let world = World::new().await;
    let extra = [
        ("AWFDRS__DETECTOR__BATCH_SIZE", "250"),
        ("AWFDRS__CONSUMER__ACK_WAIT_SECS", "2"),
    ];
    let ctx = world.context(&extra).await;
    let key = awfdrs_domain::new_api_key();
    let tenant = ctx.store.create_tenant("acme", &key).await.unwrap();

    // 5,000 events: 4,000 failures over 8 signatures, 1,000 successes.
    let mut msgs = Vec::with_capacity(5000);
    for i in 0..5000 {
        let e = if i % 5 == 4 {
            success(&format!("e{i}"), "onboarding")
        } else {
            failure(&format!("e{i}"), "checkout", &format!("code_{}", i % 8))
        };
        msgs.push(Outgoing {
            subject: ctx
                .bus
                .ns()
                .events_subject("acme", e["workflow_id"].as_str().unwrap()),
            msg_id: format!("m{i}"),
            correlation_id: None,
            headers: Vec::new(),
            payload: Bytes::from(e.to_string()),
        });
    }
    for r in ctx.bus.publish_many(msgs).await {
        r.unwrap();
    }

    let mut child = detector(&world, &extra);
    let pool = ctx.store.pool().clone();
    eventually(
        Duration::from_secs(60),
        "the detector to be mid-way",
        || async { (count(&pool, "SELECT count(*) FROM events").await >= 500).then_some(()) },
    )
    .await;
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "the detector was killed, not exited");
    let at_kill = count(&pool, "SELECT count(*) FROM events").await;
    assert!(at_kill < 5000, "the kill came too late to test anything");

    let mut child = detector(&world, &extra);
    eventually(
        Duration::from_secs(90),
        "all 5,000 events persisted",
        || async { (count(&pool, "SELECT count(*) FROM events").await == 5000).then_some(()) },
    )
    .await;
    eventually(Duration::from_secs(30), "every message settled", || async {
        (ctx.bus.consumer_backlog(Stage::Detector).await.unwrap() == 0).then_some(())
    })
    .await;
    let total: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(event_count), 0)::bigint FROM incidents WHERE tenant_id = $1",
    )
    .bind(tenant.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        total, 4000,
        "event_count must count each failure exactly once"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM incidents").await, 8);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM (SELECT DISTINCT id FROM events) e"
        )
        .await,
        5000
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
    cleanup(&ctx, &world).await;
}

#[tokio::test]
async fn sigterm_drains_in_flight_work_and_exits_zero() {
    let world = World::new().await;
    let ctx = world.context(&[]).await;
    let key = awfdrs_domain::new_api_key();
    ctx.store.create_tenant("acme", &key).await.unwrap();
    let mut child = detector(&world, &[]);
    let pool = ctx.store.pool().clone();
    let e = failure("k1", "checkout", "payment_timeout");
    ctx.bus
        .publish(Outgoing {
            subject: ctx.bus.ns().events_subject("acme", "checkout"),
            msg_id: "k1".into(),
            correlation_id: None,
            headers: Vec::new(),
            payload: Bytes::from(e.to_string()),
        })
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "the event persisted", || async {
        (count(&pool, "SELECT count(*) FROM events").await == 1).then_some(())
    })
    .await;
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the detector exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM must exit cleanly");
    cleanup(&ctx, &world).await;
}
