//! A vendor outage across 1,000 workflow runs of four tenants, end to end:
//! the failures open stripe's breaker on their own; retries hold while it
//! is open, none is fired into it; the test plays the workflow engine (a
//! retry command makes its run fail again while the vendor is down, and
//! succeed once it is back); on recovery the held retries go out at the
//! half-open probe count, then paced by the vendor's rate limit; every
//! held retry ends, and every incident resolves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use awfdrs_bus::Topic;
use awfdrs_domain::RetryCommandV1;
use awfdrs_tests::{System, count, eventually, failure, rules_edited, success};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::Value;
use sqlx::PgPool;

const RUNS: usize = 1000;
const TENANTS: usize = 4;
const RATE: f64 = 50.0;
const BURST: usize = 5;
const PROBES: usize = 2;
const SUCCESSES_TO_CLOSE: usize = 2;
/// How far the scheduler's watched view of a breaker may lag its KV entry.
const VIEW_LAG: chrono::Duration = chrono::Duration::milliseconds(500);
const WAIT: Duration = Duration::from_secs(300);

fn rules() -> std::path::PathBuf {
    rules_edited(&[
        (
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
      open_duration: 2s
      half_open_probes: 2
      successes_to_close: 2
      probe_timeout: 1h
    rate_limit:
      retries_per_second: 50
      burst: 5
",
        ),
        (
            "vendor_config.yaml",
            "tenant_rate_limit:
  retries_per_second: 2
  burst: 10",
            "tenant_rate_limit:
  retries_per_second: 500
  burst: 500",
        ),
        (
            "vendor_config.yaml",
            "max_retries_per_vendor_per_hour: 1000",
            "max_retries_per_vendor_per_hour: 100000",
        ),
        (
            "retry_policies.yaml",
            "    initial_delay: 10s
    multiplier: 3
    max_delay: 5m
    max_attempts: 4",
            "    initial_delay: 200ms
    multiplier: 1
    jitter: false
    max_delay: 5m
    max_attempts: 10",
        ),
    ])
}

/// The run's event: its failure (the vendor down) or its success.
fn outcome(key: &str, workflow: &str, run: &str, ok: bool) -> Value {
    let mut e = if ok {
        success(key, workflow)
    } else {
        failure(key, workflow, "payment_timeout")
    };
    e["workflow_run_id"] = run.into();
    e
}

/// The state of stripe's breaker over time: (from, state) spans, oldest
/// first, from its transitions.
async fn spans(pool: &PgPool) -> Vec<(DateTime<Utc>, String)> {
    sqlx::query_as(
        "SELECT at, to_state FROM breaker_transitions WHERE vendor = 'stripe' ORDER BY at, id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The state at `t` (closed before the first transition), and since when.
fn state_at(spans: &[(DateTime<Utc>, String)], t: DateTime<Utc>) -> (DateTime<Utc>, &str) {
    spans
        .iter()
        .rev()
        .find(|(at, _)| *at <= t)
        .map_or((DateTime::<Utc>::MIN_UTC, "CLOSED"), |(at, s)| {
            (*at, s.as_str())
        })
}

#[tokio::test]
async fn a_vendor_outage_across_a_thousand_runs_holds_then_paces_the_retries() {
    let rules = rules();
    let sys = Arc::new(
        System::start_all(&[
            ("AWFDRS__RULES__DIR", rules.to_str().unwrap()),
            ("AWFDRS__COORDINATOR__HOLD_CHECK_MS", "50"),
            ("AWFDRS__DETECTOR__AUTO_RESOLVE_SUCCESSES", "1"),
            ("AWFDRS__ANALYZER__BREAKER_CHECK_MS", "3600000"),
        ])
        .await,
    );
    let mut keys = Vec::new();
    for t in 0..TENANTS {
        keys.push(sys.tenant(&format!("shop-{t}")).await.1);
    }
    let ns = sys.ns().as_str().to_owned();
    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{ns}.commands.>"))
        .await
        .unwrap();
    let pool = sys.ctx.store.pool().clone();

    // The workflow engine: each retry command makes its run fail again
    // while the vendor is down, and succeed once it is back.
    let recovered = Arc::new(AtomicBool::new(false));
    let engine = {
        let (sys, keys, recovered) = (sys.clone(), keys.clone(), recovered.clone());
        tokio::spawn(async move {
            let mut n = 0usize;
            while let Some(m) = commands.next().await {
                let c: RetryCommandV1 = serde_json::from_slice(&m.payload).unwrap();
                let t: usize = c.tenant.trim_start_matches("shop-").parse().unwrap();
                let ok = recovered.load(Ordering::SeqCst);
                let run = c.workflow_run_id.clone().unwrap();
                let e = outcome(&format!("retry-{n}"), &c.workflow_id, &run, ok);
                n += 1;
                let (sys, key) = (sys.clone(), keys[t].clone());
                tokio::spawn(async move {
                    assert_eq!(sys.post("/api/v1/events", &key, &e).await.0, 202);
                });
            }
        })
    };

    // The outage: every run fails.
    for key in &keys {
        let batch: Vec<Value> = (0..RUNS / TENANTS)
            .map(|i| {
                outcome(
                    &format!("f{i}"),
                    &format!("flow-{i}"),
                    &format!("run-{i}"),
                    false,
                )
            })
            .collect();
        for chunk in batch.chunks(250) {
            let (status, body) = sys
                .post("/api/v1/events/batch", key, &Value::from(chunk.to_vec()))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }
    eventually(WAIT, "every incident acted on", || async {
        (count(&pool, "SELECT count(DISTINCT incident_id) FROM actions").await == RUNS as i64)
            .then_some(())
    })
    .await;
    // The vendor is back.
    recovered.store(true, Ordering::SeqCst);
    eventually(WAIT, "every incident resolved", || async {
        (count(
            &pool,
            "SELECT count(*) FROM incidents WHERE status = 'RESOLVED'",
        )
        .await
            == RUNS as i64)
            .then_some(())
    })
    .await;

    // Every held retry ended: released, escalated or cancelled.
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM actions WHERE kind = 'hold' AND status NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')"
        )
        .await,
        0
    );
    let held = count(&pool, "SELECT count(*) FROM actions WHERE kind = 'hold'").await;
    assert!(
        held > (RUNS / 2) as i64,
        "the outage held most retries: {held}"
    );

    // No retry fired into an open breaker; half-open, only its probes.
    let spans = spans(&pool).await;
    assert!(
        spans.iter().any(|(_, s)| s == "OPEN"),
        "the breaker never opened"
    );
    let fired: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT fired_at FROM actions WHERE kind = 'retry' AND fired_at IS NOT NULL ORDER BY fired_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut per_half_open = std::collections::BTreeMap::<DateTime<Utc>, usize>::new();
    for t in &fired {
        let (since, state) = state_at(&spans, *t);
        match state {
            "OPEN" => assert!(
                *t - since < VIEW_LAG,
                "fired at {t} into a breaker open since {since}"
            ),
            "HALF_OPEN" => *per_half_open.entry(since).or_default() += 1,
            _ => {}
        }
    }
    // At most `PROBES` in flight at a time: a probe that reports frees its
    // slot for the next, until enough have succeeded to close it.
    for (since, n) in &per_half_open {
        assert!(
            *n < PROBES + SUCCESSES_TO_CLOSE,
            "{n} retries fired in the half-open span from {since}"
        );
    }

    // After the breaker last closed, paced by the vendor's rate limit: in
    // any second, at most its burst and a second's worth (the scheduler
    // fires a moment after each release).
    let closed_at = spans
        .iter()
        .rev()
        .find(|(_, s)| s == "CLOSED")
        .map(|(at, _)| *at)
        .expect("the breaker closed");
    let after: Vec<&DateTime<Utc>> = fired.iter().filter(|t| **t >= closed_at).collect();
    assert!(
        after.len() > RUNS / 2,
        "most retries went after recovery: {}",
        after.len()
    );
    let most = BURST + (RATE * 1.25) as usize;
    for (i, t) in after.iter().enumerate() {
        let within = after[i..]
            .iter()
            .take_while(|u| ***u - **t < chrono::Duration::seconds(1))
            .count();
        assert!(
            within <= most,
            "{within} retries fired within a second from {t}"
        );
    }
    let span = (*after[after.len() - 1] - *after[0]).num_milliseconds() as f64 / 1000.0;
    let least = (after.len() - BURST) as f64 / RATE * 0.9;
    assert!(
        span >= least,
        "{} retries went out in {span} s",
        after.len()
    );

    // One command per fired retry, whatever was redelivered.
    assert_eq!(
        sys.ctx.bus.stored(Topic::Commands).await.unwrap(),
        fired.len() as u64
    );
    engine.abort();
    let _ = engine.await;
    eventually(WAIT, "the engine's last posts answered", || async {
        (Arc::strong_count(&sys) == 1).then_some(())
    })
    .await;
    let Ok(sys) = Arc::try_unwrap(sys) else {
        panic!("the engine still holds the system");
    };
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}
