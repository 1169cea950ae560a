//! The analyzer end to end: one decision per incident state change, shown
//! in the API, superseded by later material changes, never duplicated by a
//! crash, and never carrying another tenant's data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_tests::{System, World, awfdrs_bin, cleanup, cli, eventually, failure, success};
use serde_json::{Value, json};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(60);

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The incident of `tenant_key` once it has `n` decisions and is no longer
/// `NEW` (the view reads the incident and its decisions one after the
/// other, so it may show a decision a moment before the status).
async fn decided(sys: &System, key: &str, n: usize) -> Value {
    eventually(WAIT, &format!("{n} decision(s)"), || async {
        let (_, list) = sys.get("/api/v1/incidents", key).await;
        let id = list["items"][0]["id"].as_str()?.to_owned();
        let (_, detail) = sys.get(&format!("/api/v1/incidents/{id}"), key).await;
        let done = detail["decisions"].as_array()?.len() == n && detail["status"] != "NEW";
        done.then_some(detail)
    })
    .await
}

#[tokio::test]
async fn a_flood_of_one_signature_makes_one_decision_shown_with_why_it_was_grouped() {
    let sys = System::start_analyzed(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let events: Vec<Value> = (0..300)
        .map(|i| {
            let mut e = failure(&format!("flood-{i}"), "checkout", "payment__timeout");
            e["vendor"] = json!("stripe");
            e
        })
        .collect();
    for chunk in events.chunks(100) {
        let (status, body) = sys.post("/api/v1/events/batch", &key, &json!(chunk)).await;
        assert_eq!(status, 200);
        let accepted = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == 202);
        assert!(accepted, "{body}");
    }
    let detail = decided(&sys, &key, 1).await;
    let pool = sys.ctx.store.pool().clone();
    eventually(WAIT, "every failure counted", || async {
        (count(&pool, "SELECT event_count FROM incidents").await == 300).then_some(())
    })
    .await;
    // However many failures, one analysis: one decision, one announcement.
    assert_eq!(count(&pool, "SELECT count(*) FROM decisions").await, 1);
    eventually(WAIT, "the decision published", || async {
        (count(
            &pool,
            "SELECT count(*) FROM outbox WHERE msg_id LIKE 'decision:%' AND published_at IS NOT NULL",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;

    let inputs = &detail["signature_inputs"];
    assert_eq!(inputs["error_code_raw"], "payment__timeout", "as sent");
    assert_eq!(inputs["error_code"], "payment_timeout");
    assert_eq!(inputs["workflow_id"], "checkout");
    assert_eq!(
        inputs["reopen_window"]["key"],
        "detector.reopen_window_secs"
    );
    let d = &detail["decisions"][0];
    assert_eq!(d["trigger"], "opened");
    assert_eq!(d["engine"]["name"], "local");
    assert_eq!(d["classification"]["rule"]["file"], "error_codes.yaml");
    assert_eq!(d["classification"]["rule"]["key"], "codes.payment_timeout");
    assert!(d["root_cause"]["hypothesis"]["evidence"].is_array());
    assert!(
        ["retry", "hold", "escalate", "none"]
            .contains(&d["recommended_action"]["action"].as_str().unwrap())
    );
    assert_eq!(detail["status"], "ANALYZING");
    let timeline = detail["timeline"].as_array().unwrap();
    assert_eq!(timeline.last().unwrap()["actor"], "analyzer");

    // The CLI shows the same decision, explained.
    let id = detail["id"].as_str().unwrap();
    let shown = cli(&sys.world, &["incidents", "show", id]).await;
    for want in [
        "timeline:",
        "Why grouped",
        "\"payment__timeout\" normalised to payment_timeout",
        "Root cause",
    ] {
        assert!(shown.contains(want), "{want:?} in:\n{shown}");
    }
    let json: Value =
        serde_json::from_str(&cli(&sys.world, &["incidents", "show", id, "--json"]).await).unwrap();
    assert_eq!(json["decisions"][0], detail["decisions"][0]);
    let explained = cli(&sys.world, &["incidents", "explain", id]).await;
    assert!(explained.contains("Recommendation"), "{explained}");
    let latest = cli(
        &sys.world,
        &["incidents", "explain", "--tenant", "acme", "--json"],
    )
    .await;
    let latest: Value = serde_json::from_str(&latest).unwrap();
    assert_eq!(latest, detail["decisions"][0]);
    sys.stop().await;
}

#[tokio::test]
async fn a_reopening_and_a_breaker_opening_each_make_a_decision_that_supersedes_the_last() {
    let sys = System::start_analyzed(&[
        ("AWFDRS__DETECTOR__AUTO_RESOLVE_SUCCESSES", "1"),
        ("AWFDRS__ANALYZER__BREAKER_CHECK_MS", "100"),
    ])
    .await;
    let (_, key) = sys.tenant("acme").await;
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("f1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let first = decided(&sys, &key, 1).await;
    let id = first["id"].as_str().unwrap().to_owned();
    // Resolved by a success, then re-opened by a failure inside the window.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, _) = sys
        .post("/api/v1/events", &key, &success("s1", "checkout"))
        .await;
    assert_eq!(status, 202);
    eventually(WAIT, "auto-resolved", || async {
        let (_, d) = sys.get(&format!("/api/v1/incidents/{id}"), &key).await;
        (d["status"] == "RESOLVED").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("f2", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let second = decided(&sys, &key, 2).await;
    let (a, b) = (&second["decisions"][0], &second["decisions"][1]);
    assert_eq!(b["trigger"], "reopened:1");
    assert_eq!(b["supersedes"], a["id"]);

    sys.ctx
        .breakers
        .force_open("stripe", "test", "vendor down")
        .await
        .unwrap();
    let third = decided(&sys, &key, 3).await;
    let c = &third["decisions"][2];
    assert!(
        c["trigger"]
            .as_str()
            .unwrap()
            .starts_with("breaker-opened:stripe:"),
        "{c}"
    );
    assert_eq!(c["supersedes"], b["id"]);
    assert_eq!(c["recommended_action"]["action"], "hold", "{c}");
    sys.stop().await;
}

#[tokio::test]
async fn a_decision_citing_other_tenants_holds_only_their_counts() {
    let sys = System::start_analyzed(&[]).await;
    let mut secrets = Vec::new();
    for slug in ["globex", "initech"] {
        let (t, key) = sys.tenant(slug).await;
        for i in 0..3 {
            let mut e = failure(
                &format!("{slug}-{i}"),
                &format!("{slug}-secret-flow"),
                "service_unavailable",
            );
            e["error"]["message"] = json!(format!("{slug} private message"));
            let (status, body) = sys.post("/api/v1/events", &key, &e).await;
            assert_eq!(status, 202);
            secrets.push(body["event_id"].as_str().unwrap().to_owned());
        }
        secrets.extend([
            t.id.to_string(),
            slug.to_owned(),
            format!("{slug}-secret-flow"),
        ]);
        secrets.push(format!("{slug} private message"));
    }
    let (_, key) = sys.tenant("acme").await;
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("a1", "checkout", "service_unavailable"),
        )
        .await;
    assert_eq!(status, 202);
    let detail = decided(&sys, &key, 1).await;
    let text = detail["decisions"][0].to_string();
    for s in &secrets {
        assert!(
            !text.contains(s.as_str()),
            "the decision leaks {s:?}: {text}"
        );
    }
    assert!(
        text.contains("tenants"),
        "the decision counts the other tenants: {text}"
    );
    sys.stop().await;
}

#[tokio::test]
async fn an_analyzer_killed_mid_batch_makes_no_decision_twice() {
    let world = World::new().await;
    let ctx = world.context(&[]).await;
    let key = awfdrs_domain::new_api_key();
    ctx.store.create_tenant("acme", &key).await.unwrap();
    // The detector runs in-process; the analyzer is the real binary.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let detector = awfdrs_tests::run_detector(ctx.clone(), shutdown.clone()).await;
    let spawn = || {
        tokio::process::Command::new(awfdrs_bin().with_file_name("analyzer"))
            .env_clear()
            .envs(world.env(&[
                ("AWFDRS__ANALYZER__BATCH_SIZE", "5"),
                ("AWFDRS__CONSUMER__ACK_WAIT_SECS", "3"),
            ]))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut analyzer = spawn();
    const N: i64 = 60;
    for i in 0..N {
        let e = failure(&format!("k{i}"), &format!("flow-{i}"), "payment_timeout");
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
    eventually(WAIT, "the analyzer under way", || async {
        (count(&pool, "SELECT count(*) FROM decisions").await > 0).then_some(())
    })
    .await;
    analyzer.start_kill().unwrap();
    let _ = analyzer.wait().await;
    let mut analyzer = spawn();
    eventually(
        Duration::from_secs(120),
        "every incident decided",
        || async { (count(&pool, "SELECT count(*) FROM decisions").await == N).then_some(()) },
    )
    .await;
    eventually(WAIT, "every decision published", || async {
        (count(
            &pool,
            "SELECT count(*) FROM outbox WHERE msg_id LIKE 'decision:%' AND published_at IS NOT NULL",
        )
        .await
            == N)
            .then_some(())
    })
    .await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM (SELECT incident_id FROM decisions GROUP BY 1 HAVING count(*) > 1) d").await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM incidents WHERE status <> 'ANALYZING'"
        )
        .await,
        0
    );
    analyzer.start_kill().unwrap();
    let _ = analyzer.wait().await;
    shutdown.cancel();
    let _ = detector.await;
    cleanup(&ctx, &world).await;
}
