//! Held retries end to end: while the vendor's breaker is open they hold
//! and no retry command goes out; when it lets retries through again each
//! hold is released once into one scheduled retry, fired once; a half-open
//! breaker lets at most its probe count go.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use awfdrs_domain::{EscalationV1, RetryCommandV1};
use awfdrs_guard::{BreakerState, Decision, Outcomes, RateKey};
use awfdrs_tests::{System, eventually, failure};
use futures::StreamExt;
use sqlx::PgPool;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(90);
/// Long enough for many rounds of the hold check (every 50 ms here).
const ROUNDS: Duration = Duration::from_millis(750);
const HOLDS: usize = 5;
/// The analyzer's look for breakers that opened makes a new decision about
/// each open incident, and a decision that arrives after the breaker let
/// retries through again makes a retry of its own (the next attempt):
/// these tests keep to the holds, so it looks only once, at start.
const NO_BREAKER_LOOKS: (&str, &str) = ("AWFDRS__ANALYZER__BREAKER_CHECK_MS", "3600000");

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn ids(pool: &PgPool, sql: &str) -> BTreeSet<Uuid> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Forces stripe's breaker open and sends failures of `HOLDS` workflows;
/// returns once each has become a held retry.
async fn hold_retries(sys: &System) {
    let (_, key) = sys.tenant("acme").await;
    sys.ctx
        .breakers
        .force_open("stripe", "test", "down")
        .await
        .unwrap();
    for i in 0..HOLDS {
        let e = failure(&format!("k{i}"), &format!("flow-{i}"), "payment_timeout");
        let (status, _) = sys.post("/api/v1/events", &key, &e).await;
        assert_eq!(status, 202);
    }
    let pool = sys.ctx.store.pool().clone();
    eventually(WAIT, "every retry held", || async {
        let held = count(
            &pool,
            "SELECT count(*) FROM actions WHERE kind = 'hold' AND status = 'PENDING'",
        )
        .await;
        (held == HOLDS as i64).then_some(())
    })
    .await;
}

#[tokio::test]
async fn held_retries_are_released_once_each_when_the_breaker_lets_retries_through() {
    let sys = System::start_all(&[
        ("AWFDRS__COORDINATOR__HOLD_CHECK_MS", "50"),
        NO_BREAKER_LOOKS,
    ])
    .await;
    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{}.commands.>", sys.ns().as_str()))
        .await
        .unwrap();
    hold_retries(&sys).await;
    let pool = sys.ctx.store.pool().clone();

    // Open: many rounds of the check later, nothing is released or sent.
    tokio::time::sleep(ROUNDS).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM actions WHERE kind = 'retry'").await,
        0
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(1), commands.next())
            .await
            .is_err(),
        "a retry command was published while the breaker was open"
    );

    let closed = sys.ctx.breakers.reset("stripe", "test").await.unwrap();
    assert_eq!(closed.map(|t| t.to), Some(BreakerState::Closed));
    eventually(WAIT, "every hold released", || async {
        let released = count(
            &pool,
            "SELECT count(*) FROM actions WHERE kind = 'hold' AND status = 'SUCCEEDED'",
        )
        .await;
        (released == HOLDS as i64).then_some(())
    })
    .await;

    // One retry per hold, at its held attempt, made by the release (no
    // decision); each hold ended once.
    let expected = ids(
        &pool,
        "SELECT a.id FROM actions h
         JOIN actions a ON a.incident_id = h.incident_id AND a.kind = 'retry'
                       AND a.attempt = h.attempt
         WHERE h.kind = 'hold'",
    )
    .await;
    assert_eq!(expected.len(), HOLDS);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM actions WHERE kind = 'retry' AND decision_id IS NULL"
        )
        .await,
        HOLDS as i64
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM action_transitions t JOIN actions a ON a.id = t.action_id
             WHERE a.kind = 'hold' AND t.to_status = 'SUCCEEDED' AND t.actor = 'coordinator'
               AND t.reason = 'released: breaker CLOSED'"
        )
        .await,
        HOLDS as i64
    );

    // The scheduler fires each released retry once.
    let mut fired = BTreeSet::new();
    for _ in 0..HOLDS {
        let msg = tokio::time::timeout(WAIT, commands.next())
            .await
            .expect("a retry command")
            .unwrap();
        let command: RetryCommandV1 = serde_json::from_slice(&msg.payload).unwrap();
        assert!(fired.insert(command.action_id), "fired twice: {command:?}");
    }
    assert_eq!(fired, expected);
    tokio::time::sleep(ROUNDS).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1), commands.next())
            .await
            .is_err(),
        "more retry commands than held retries"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM actions WHERE kind = 'retry'").await,
        HOLDS as i64
    );
    sys.stop().await;
}

/// A copy of the shipped rules with `shipped` replaced by `changed` in
/// vendor_config.yaml.
fn rules_with(shipped: &str, changed: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/rules");
    let dir = std::env::temp_dir().join(format!("awfdrs-rules-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "error_codes.yaml",
        "retry_policies.yaml",
        "vendor_config.yaml",
    ] {
        std::fs::copy(from.join(f), dir.join(f)).unwrap();
    }
    let vendors = std::fs::read_to_string(dir.join("vendor_config.yaml")).unwrap();
    assert!(vendors.contains(shipped), "the shipped rules changed");
    std::fs::write(
        dir.join("vendor_config.yaml"),
        vendors.replace(shipped, changed),
    )
    .unwrap();
    dir
}

/// Rules in which stripe's breaker half-opens after one second, lets two
/// probes go and does not time them out within a test, and stripe's rate
/// limit allows one retry and then almost none.
fn rules_with_a_quick_stripe_breaker() -> PathBuf {
    rules_with(
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
      probe_timeout: 1h
    rate_limit:
      retries_per_second: 0.0001
      burst: 1
",
    )
}

#[tokio::test]
async fn a_half_open_breaker_releases_at_most_its_probe_count() {
    let rules = rules_with_a_quick_stripe_breaker();
    let sys = System::start_all(&[
        ("AWFDRS__COORDINATOR__HOLD_CHECK_MS", "50"),
        ("AWFDRS__RULES__DIR", rules.to_str().unwrap()),
        NO_BREAKER_LOOKS,
    ])
    .await;
    hold_retries(&sys).await;
    let pool = sys.ctx.store.pool().clone();

    // The vendor's rate limit spent, so nothing goes while the breaker is
    // closed; then the breaker opens on its own and half-opens a second later.
    let limit = sys.ctx.rules.current().vendor("stripe").rate_limit;
    let key = RateKey::Vendor("stripe".into());
    while let Decision::Allow { .. } = sys.ctx.rate_limits.check(&key, &limit).await.unwrap() {}
    sys.ctx.breakers.reset("stripe", "test").await.unwrap();
    let storm = Outcomes {
        successes: 0,
        failures: 40,
        sources: vec![1, 2, 3],
    };
    let opened = sys.ctx.breakers.record("stripe", &storm, "test").await;
    assert_eq!(opened.unwrap().map(|t| t.to), Some(BreakerState::Open));

    let released = "SELECT count(*) FROM actions WHERE kind = 'hold' AND status = 'SUCCEEDED'";
    eventually(WAIT, "the probes released", || async {
        (count(&pool, released).await == 2).then_some(())
    })
    .await;
    tokio::time::sleep(ROUNDS).await;
    assert_eq!(count(&pool, released).await, 2, "more than the probe count");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM actions WHERE kind = 'hold' AND status = 'PENDING'"
        )
        .await,
        HOLDS as i64 - 2
    );
    let view = sys.ctx.breakers.get("stripe", awfdrs_guard::now());
    assert_eq!(view.state, BreakerState::HalfOpen);
    assert_eq!(view.probes_in_flight, 2, "each release holds a probe slot");
    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT t.reason FROM action_transitions t JOIN actions a ON a.id = t.action_id
         WHERE a.kind = 'hold' AND t.to_status = 'SUCCEEDED'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(reasons, ["released: breaker HALF_OPEN"; 2]);
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}

#[tokio::test]
async fn a_held_retry_over_a_hard_limit_is_escalated_when_released() {
    let rules = rules_with(
        "  max_retries_per_incident: 20\n",
        "  max_retries_per_incident: 0\n",
    );
    let sys = System::start_all(&[
        ("AWFDRS__COORDINATOR__HOLD_CHECK_MS", "50"),
        ("AWFDRS__RULES__DIR", rules.to_str().unwrap()),
        NO_BREAKER_LOOKS,
    ])
    .await;
    let mut escalations = sys
        .ctx
        .bus
        .subscribe(sys.ctx.bus.ns().escalations("acme"))
        .await
        .unwrap();
    hold_retries(&sys).await;
    let pool = sys.ctx.store.pool().clone();
    sys.ctx.breakers.reset("stripe", "test").await.unwrap();
    eventually(WAIT, "every hold escalated", || async {
        let escalated = count(
            &pool,
            "SELECT count(*) FROM actions WHERE kind = 'hold' AND status = 'FAILED'",
        )
        .await;
        (escalated == HOLDS as i64).then_some(())
    })
    .await;

    // Each incident escalated once, naming the limit; nothing retried.
    let escalated = ids(
        &pool,
        "SELECT a.id FROM actions h JOIN actions a ON a.incident_id = h.incident_id
         WHERE h.kind = 'hold' AND a.kind = 'escalate'
           AND a.limit_key = 'vendor_config.yaml: hard_limits.max_retries_per_incident'",
    )
    .await;
    assert_eq!(escalated.len(), HOLDS);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM action_transitions t JOIN actions a ON a.id = t.action_id
             WHERE a.kind = 'hold' AND t.to_status = 'FAILED'
               AND t.reason LIKE 'escalated: hard limit reached: %'"
        )
        .await,
        HOLDS as i64
    );
    let mut announced = BTreeSet::new();
    for _ in 0..HOLDS {
        let msg = tokio::time::timeout(WAIT, escalations.next())
            .await
            .expect("an escalation message")
            .unwrap();
        let e: EscalationV1 = serde_json::from_slice(&msg.payload).unwrap();
        assert!(announced.insert(e.action_id), "announced twice: {e:?}");
        let stopped = e.stopped_by.expect("the limit that stopped it");
        assert_eq!(
            stopped.config_key,
            "vendor_config.yaml: hard_limits.max_retries_per_incident"
        );
    }
    assert_eq!(announced, escalated);
    tokio::time::sleep(ROUNDS).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM actions WHERE kind = 'retry'").await,
        0
    );
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}
