//! The scheduler end to end: a due retry is fired once, as a retry command
//! with its deterministic message id, and several schedulers share the work
//! without firing any retry twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use awfdrs_domain::RetryCommandV1;
use awfdrs_runtime::Harness;
use awfdrs_tests::{System, eventually, failure};
use futures::StreamExt;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(90);

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_due_retry_is_fired_once_as_a_retry_command() {
    let sys = System::start_all(&[("AWFDRS__DETECTOR__AUTO_RESOLVE_SUCCESSES", "1")]).await;
    let (_, key) = sys.tenant("acme").await;
    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{}.commands.>", sys.ns().as_str()))
        .await
        .unwrap();
    let mut event = failure("order-7-charge-1", "checkout", "payment_timeout");
    event["workflow_run_id"] = "run-7".into();
    let (status, _) = sys.post("/api/v1/events", &key, &event).await;
    assert_eq!(status, 202);

    let msg = tokio::time::timeout(WAIT, commands.next())
        .await
        .expect("a retry command")
        .unwrap();
    assert_eq!(
        msg.subject.as_str(),
        sys.ctx.bus.ns().retry_command("acme", "checkout")
    );
    let command: RetryCommandV1 = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(command.attempt, 1);
    assert_eq!(command.tenant, "acme");
    assert_eq!(command.workflow_run_id.as_deref(), Some("run-7"));
    assert_eq!(command.step.as_deref(), Some("charge"));
    assert_eq!(command.idempotency_key.as_deref(), Some("order-7-charge-1"));
    assert!(
        command.issued_at >= command.due_at,
        "fired at its time, not before"
    );
    let msg_id = msg.header("Nats-Msg-Id").map(str::to_owned);
    assert_eq!(msg_id, Some(format!("retry:{}:1", command.action_id)));

    let (_, list) = sys.get("/api/v1/incidents", &key).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let detail: Value = eventually(WAIT, "the action executing", || async {
        let (_, d) = sys.get(&format!("/api/v1/incidents/{id}"), &key).await;
        (d["actions"][0]["status"] == "EXECUTING").then_some(d)
    })
    .await;
    assert_eq!(detail["actions"][0]["id"], command.action_id.to_string());
    let pool = sys.ctx.store.pool().clone();
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM outbox WHERE msg_id LIKE 'retry:%'"
        )
        .await,
        1
    );
    let actors: Vec<String> =
        sqlx::query_scalar("SELECT actor FROM action_transitions ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(actors, ["coordinator", "scheduler"]);

    // The workflow recovers after the retry: the incident resolves and the
    // retry that preceded it succeeded.
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &awfdrs_tests::success("order-7-charge-2", "checkout"),
        )
        .await;
    assert_eq!(status, 202);
    let closed: Value = eventually(WAIT, "the retry succeeded", || async {
        let (_, d) = sys.get(&format!("/api/v1/incidents/{id}"), &key).await;
        (d["actions"][0]["status"] == "SUCCEEDED").then_some(d)
    })
    .await;
    assert_eq!(closed["status"], "RESOLVED");
    let actors: Vec<String> =
        sqlx::query_scalar("SELECT actor FROM action_transitions ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(actors, ["coordinator", "scheduler", "auto-resolve"]);
    sys.stop().await;
}

#[tokio::test]
async fn two_schedulers_fire_each_due_retry_once() {
    // Retries are scheduled with no scheduler running...
    let sys = System::start_coordinated(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    const N: usize = 20;
    for i in 0..N {
        let e = failure(&format!("k{i}"), &format!("flow-{i}"), "payment_timeout");
        let (status, _) = sys.post("/api/v1/events", &key, &e).await;
        assert_eq!(status, 202);
    }
    let pool = sys.ctx.store.pool().clone();
    eventually(WAIT, "every retry scheduled", || async {
        (count(
            &pool,
            "SELECT count(*) FROM actions WHERE status = 'SCHEDULED'",
        )
        .await
            == N as i64)
            .then_some(())
    })
    .await;
    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{}.commands.>", sys.ns().as_str()))
        .await
        .unwrap();
    // ...then two schedulers, each a process of its own, share them.
    let stop = CancellationToken::new();
    let mut schedulers = Vec::new();
    for _ in 0..2 {
        let h = Harness::start(sys.world.context(&[]).await, stop.clone()).unwrap();
        awfdrs_scheduler::start(&h).await.unwrap();
        schedulers.push(tokio::spawn(h.run()));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while seen.len() < N {
        let msg = tokio::time::timeout(WAIT, commands.next())
            .await
            .expect("every retry fired")
            .unwrap();
        let c: RetryCommandV1 = serde_json::from_slice(&msg.payload).unwrap();
        *seen.entry(c.msg_id()).or_default() += 1;
    }
    // Nothing more comes: each was fired once.
    let more = tokio::time::timeout(Duration::from_secs(2), commands.next()).await;
    assert!(
        more.is_err(),
        "a retry fired twice: {:?}",
        more.ok().flatten().map(|m| m.payload)
    );
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM actions WHERE status = 'EXECUTING'"
        )
        .await,
        N as i64
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM outbox WHERE msg_id LIKE 'retry:%'"
        )
        .await,
        N as i64
    );
    stop.cancel();
    for s in schedulers {
        s.await.unwrap().unwrap();
    }
    sys.stop().await;
}
