//! How a retry ends, end to end: a later failure of the same run fails it
//! and the next attempt follows (until the policy says stop and escalates);
//! a retry released as a half-open breaker's probe reports to the breaker,
//! closing it when the workflows recover and opening it again when the run
//! fails anew.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_bus::Seen;
use awfdrs_domain::{EscalationV1, RetryCommandV1};
use awfdrs_guard::{BreakerState, Decision, Outcomes, RateKey};
use awfdrs_tests::{System, count, eventually, failure, rules_edited, success};
use futures::{Stream, StreamExt};
use serde_json::Value;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(90);

/// A failure of run `run` of `workflow`.
fn failure_of(key: &str, workflow: &str, run: &str) -> Value {
    let mut e = failure(key, workflow, "payment_timeout");
    e["workflow_run_id"] = run.into();
    e
}

/// The next retry command, within `WAIT`.
async fn next_command(commands: &mut (impl Stream<Item = Seen> + Unpin)) -> RetryCommandV1 {
    let m = tokio::time::timeout(WAIT, commands.next())
        .await
        .expect("a retry command in time")
        .expect("the subscription ended");
    serde_json::from_slice(&m.payload).unwrap()
}

#[tokio::test]
async fn a_later_failure_of_the_same_run_fails_its_retry_and_the_next_attempt_follows() {
    // Quick retries, two attempts at most.
    let rules = rules_edited(&[(
        "retry_policies.yaml",
        "    initial_delay: 10s
    multiplier: 3
    max_delay: 5m
    max_attempts: 4",
        "    initial_delay: 100ms
    multiplier: 1
    max_delay: 5m
    max_attempts: 2",
    )]);
    let sys = System::start_all(&[("AWFDRS__RULES__DIR", rules.to_str().unwrap())]).await;
    let (_, key) = sys.tenant("acme").await;
    let ns = sys.ns().as_str().to_owned();
    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{ns}.commands.>"))
        .await
        .unwrap();
    let mut escalations = sys
        .ctx
        .bus
        .subscribe(format!("{ns}.escalations.>"))
        .await
        .unwrap();
    let pool = sys.ctx.store.pool().clone();

    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure_of("f1", "checkout", "run-1"),
        )
        .await;
    assert_eq!(status, 202);
    let first = next_command(&mut commands).await;
    assert_eq!(
        (first.attempt, first.workflow_run_id.as_deref()),
        (1, Some("run-1"))
    );
    // A failure of another run does not count against it.
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure_of("g1", "checkout", "run-2"),
        )
        .await;
    assert_eq!(status, 202);

    // The same run fails again after the retry: attempt 1 failed, attempt 2 goes.
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure_of("f2", "checkout", "run-1"),
        )
        .await;
    assert_eq!(status, 202);
    let second = next_command(&mut commands).await;
    assert_eq!(second.attempt, 2, "{second:?}");
    assert_eq!(second.incident_id, first.incident_id);
    let reason: String = sqlx::query_scalar(
        "SELECT t.reason FROM action_transitions t WHERE t.action_id = $1 AND t.to_status = 'FAILED'",
    )
    .bind(first.action_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        reason.starts_with("the run failed again after the retry"),
        "{reason}"
    );
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT body->>'trigger' FROM decisions WHERE incident_id = $1 ORDER BY created_at",
    )
    .bind(first.incident_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(triggers, ["opened", "retry-failed:1"]);

    // And again: past the policy's two attempts, people are told.
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure_of("f3", "checkout", "run-1"),
        )
        .await;
    assert_eq!(status, 202);
    let m = tokio::time::timeout(WAIT, escalations.next())
        .await
        .expect("an escalation in time")
        .unwrap();
    let escalation: EscalationV1 = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(escalation.incident_id, first.incident_id);
    let stopped = escalation.stopped_by.expect("the limit that stopped it");
    assert_eq!(
        stopped.config_key,
        "retry_policies.payment_timeout.max_attempts"
    );
    eventually(WAIT, "both retries failed", || async {
        (count(
            &pool,
            "SELECT count(*) FROM actions WHERE kind = 'retry' AND status = 'FAILED'",
        )
        .await
            == 2)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1), commands.next())
            .await
            .is_err(),
        "a third retry command"
    );
    // Anyone can publish on the subject: a message naming a retry that did
    // not fail is dead-lettered, and no decision comes of it.
    let forged = serde_json::json!({
        "incident_id": first.incident_id, "tenant_id": escalation.tenant_id, "tenant": "acme",
        "signature": "s", "workflow_id": "checkout", "error_code": "payment_timeout",
        "vendor": "stripe", "step": "charge", "reopened": false, "correlation_id": "forged",
        "failed_retry": {"action_id": uuid::Uuid::new_v4(), "attempt": 7},
    });
    sys.ctx
        .bus
        .publish(awfdrs_bus::Outgoing {
            subject: sys.ctx.bus.ns().incident_retry_failed("acme"),
            msg_id: "forged".into(),
            correlation_id: None,
            headers: Vec::new(),
            payload: bytes::Bytes::from(forged.to_string()),
        })
        .await
        .unwrap();
    eventually(WAIT, "the forged message dead-lettered", || async {
        (count(
            &pool,
            "SELECT count(*) FROM dead_letters WHERE reason LIKE '%is not retry attempt 7%'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM decisions WHERE body->>'trigger' = 'retry-failed:7'"
        )
        .await,
        0
    );
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}

/// Rules in which stripe's breaker half-opens one second after it opens,
/// lets two probes go, needs both to close and does not time them out
/// within a test, and stripe's rate limit allows one retry and then almost
/// none (so that only probes go).
fn rules_with_stripe_probes() -> std::path::PathBuf {
    rules_edited(&[(
        "vendor_config.yaml",
        "  stripe:
    breaker:
      minimum_calls: 30
      min_distinct_sources: 3
    rate_limit:
      retries_per_second: 25
      burst: 50
",
        "  stripe:
    breaker:
      minimum_calls: 30
      min_distinct_sources: 3
      open_duration: 1s
      half_open_probes: 2
      successes_to_close: 2
      probe_timeout: 1h
    rate_limit:
      retries_per_second: 0.0001
      burst: 1
",
    )])
}

/// Starts every worker with `rules`, sends a failure of run `run-<i>` of
/// workflow `flow-<i>` for each of `workflows` while stripe's breaker is
/// forced open, and returns once each is a held retry; then lets the
/// breaker open on its own (so that it half-opens a second later).
async fn held_then_half_open(rules: &std::path::Path, workflows: usize) -> (System, String) {
    let sys = System::start_all(&[
        ("AWFDRS__COORDINATOR__HOLD_CHECK_MS", "50"),
        ("AWFDRS__DETECTOR__AUTO_RESOLVE_SUCCESSES", "1"),
        ("AWFDRS__COORDINATOR__GAUGES_MS", "100"),
        ("AWFDRS__ANALYZER__BREAKER_CHECK_MS", "3600000"),
        ("AWFDRS__RULES__DIR", rules.to_str().unwrap()),
    ])
    .await;
    let (_, key) = sys.tenant("acme").await;
    sys.ctx
        .breakers
        .force_open("stripe", "test", "down")
        .await
        .unwrap();
    for i in 0..workflows {
        let e = failure_of(&format!("k{i}"), &format!("flow-{i}"), &format!("run-{i}"));
        assert_eq!(sys.post("/api/v1/events", &key, &e).await.0, 202);
    }
    let pool = sys.ctx.store.pool().clone();
    eventually(WAIT, "every retry held", || async {
        (count(
            &pool,
            "SELECT count(*) FROM actions WHERE kind = 'hold' AND status = 'PENDING'",
        )
        .await
            == workflows as i64)
            .then_some(())
    })
    .await;
    // And /metrics counts them.
    let held = format!("awfdrs_held_retries{{vendor=\"stripe\"}} {workflows}");
    let pending = format!("awfdrs_actions{{kind=\"hold\",status=\"PENDING\"}} {workflows}");
    eventually(WAIT, "the held retries on /metrics", || async {
        let text = sys.ctx.metrics.render();
        (text.contains(&held) && text.contains(&pending)).then_some(())
    })
    .await;
    // The vendor's rate limit spent, so nothing goes while the breaker is
    // closed for a moment before it opens on its own.
    let limit = sys.ctx.rules.current().vendor("stripe").rate_limit;
    let rate = RateKey::Vendor("stripe".into());
    while let Decision::Allow { .. } = sys.ctx.rate_limits.check(&rate, &limit).await.unwrap() {}
    sys.ctx.breakers.reset("stripe", "test").await.unwrap();
    let storm = Outcomes {
        successes: 0,
        failures: 40,
        sources: vec![1, 2, 3],
    };
    let opened = sys.ctx.breakers.record("stripe", &storm, "test").await;
    assert_eq!(opened.unwrap().map(|t| t.to), Some(BreakerState::Open));
    (sys, key)
}

/// The workflows whose retries went out as probes, once both have.
async fn probes_fired(commands: &mut (impl Stream<Item = Seen> + Unpin)) -> Vec<RetryCommandV1> {
    let mut fired = vec![next_command(commands).await, next_command(commands).await];
    fired.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
    fired
}

/// The reasons of stripe's breaker transitions to `to`, oldest first.
async fn transitions_to(pool: &PgPool, to: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT reason FROM breaker_transitions WHERE vendor = 'stripe' AND to_state = $1
         ORDER BY id",
    )
    .bind(to)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn probe_retries_whose_workflows_recover_close_the_breaker() {
    let rules = rules_with_stripe_probes();
    let (sys, key) = held_then_half_open(&rules, 3).await;
    let ns = sys.ns().as_str().to_owned();
    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{ns}.commands.>"))
        .await
        .unwrap();
    let pool = sys.ctx.store.pool().clone();
    let probes = probes_fired(&mut commands).await;
    assert_eq!(
        sys.ctx.breakers.get("stripe", awfdrs_guard::now()).state,
        BreakerState::HalfOpen
    );
    for (i, p) in probes.iter().enumerate() {
        let mut ok = success(&format!("ok{i}"), &p.workflow_id);
        ok["workflow_run_id"] = p.workflow_run_id.clone().unwrap().into();
        assert_eq!(sys.post("/api/v1/events", &key, &ok).await.0, 202);
    }
    eventually(WAIT, "the breaker closed by its probes", || async {
        let closed = transitions_to(&pool, "CLOSED").await;
        closed
            .iter()
            .any(|r| r == "2 probes succeeded")
            .then_some(())
    })
    .await;
    let succeeded = count(
        &pool,
        "SELECT count(*) FROM actions WHERE kind = 'retry' AND status = 'SUCCEEDED'",
    )
    .await;
    assert_eq!(succeeded, 2);
    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT reason FROM actions WHERE kind = 'retry' AND status = 'SUCCEEDED'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for r in reasons {
        assert!(
            r.contains("; the workflow recovered after the retry, ")
                && r.ends_with(" s after the first failure"),
            "{r}"
        );
    }
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}

#[tokio::test]
async fn a_probe_retry_whose_run_fails_again_opens_the_breaker_again() {
    let rules = rules_with_stripe_probes();
    let (sys, key) = held_then_half_open(&rules, 3).await;
    let ns = sys.ns().as_str().to_owned();
    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{ns}.commands.>"))
        .await
        .unwrap();
    let pool = sys.ctx.store.pool().clone();
    let probes = probes_fired(&mut commands).await;
    let p = &probes[0];
    let again = failure_of(
        "again",
        &p.workflow_id,
        p.workflow_run_id.as_deref().unwrap(),
    );
    assert_eq!(sys.post("/api/v1/events", &key, &again).await.0, 202);
    let expected = format!("probe by {} failed", p.action_id);
    eventually(WAIT, "the breaker opened by the failed probe", || async {
        let opened = transitions_to(&pool, "OPEN").await;
        opened.contains(&expected).then_some(())
    })
    .await;
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}

#[tokio::test]
async fn a_retry_due_after_its_vendor_s_breaker_opened_waits_for_it_to_close() {
    // The first retry due two seconds after the failure, exactly.
    let rules = rules_edited(&[(
        "retry_policies.yaml",
        "    initial_delay: 10s
    multiplier: 3
    max_delay: 5m
    max_attempts: 4",
        "    initial_delay: 2s
    multiplier: 3
    jitter: false
    max_delay: 5m
    max_attempts: 4",
    )]);
    let sys = System::start_all(&[
        ("AWFDRS__RULES__DIR", rules.to_str().unwrap()),
        ("AWFDRS__ANALYZER__BREAKER_CHECK_MS", "3600000"),
    ])
    .await;
    let (_, key) = sys.tenant("acme").await;
    let ns = sys.ns().as_str().to_owned();
    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{ns}.commands.>"))
        .await
        .unwrap();
    let pool = sys.ctx.store.pool().clone();
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure_of("f1", "checkout", "run-1"),
        )
        .await;
    assert_eq!(status, 202);
    eventually(WAIT, "the retry scheduled", || async {
        (count(
            &pool,
            "SELECT count(*) FROM actions WHERE kind = 'retry' AND status = 'SCHEDULED'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    sys.ctx
        .breakers
        .force_open("stripe", "test", "down")
        .await
        .unwrap();
    // Well past its time, nothing goes while the breaker is open.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1), commands.next())
            .await
            .is_err(),
        "a retry command went out while the breaker was open"
    );
    let reason: String = sqlx::query_scalar("SELECT reason FROM actions WHERE kind = 'retry'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        reason,
        "deferred: the breaker of stripe does not let retries through"
    );
    sys.ctx.breakers.reset("stripe", "test").await.unwrap();
    let fired = next_command(&mut commands).await;
    assert_eq!(fired.attempt, 1);
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}
