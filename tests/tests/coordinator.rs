//! The coordinator end to end: each decision becomes one action after the
//! admission step; escalations are announced; shadow and off send nothing;
//! a redelivered decision makes no second action.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use awfdrs_bus::Outgoing;
use awfdrs_domain::EscalationV1;
use awfdrs_store::TenantMode;
use awfdrs_tests::{System, cli, eventually, failure};
use bytes::Bytes;
use serde_json::Value;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(60);

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The only incident of `key`'s tenant once it has an action (and so is
/// `ACTIONED`: the view reads the incident and its actions one after the
/// other, so it may show the action a moment before the status).
async fn actioned(sys: &System, key: &str) -> Value {
    eventually(WAIT, "an action", || async {
        let (_, list) = sys.get("/api/v1/incidents", key).await;
        let id = list["items"][0]["id"].as_str()?.to_owned();
        let (_, detail) = sys.get(&format!("/api/v1/incidents/{id}"), key).await;
        let acted = !detail["actions"].as_array()?.is_empty() && detail["status"] != "ANALYZING";
        acted.then_some(detail)
    })
    .await
}

#[tokio::test]
async fn a_transient_failure_becomes_one_scheduled_retry_and_the_incident_is_actioned() {
    let sys = System::start_coordinated(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("f1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let detail = actioned(&sys, &key).await;
    let a = &detail["actions"][0];
    assert_eq!(a["kind"], "retry", "{detail}");
    assert_eq!(a["status"], "SCHEDULED");
    assert_eq!(a["attempt"], 1);
    assert_eq!(a["decision_id"], detail["decisions"][0]["id"]);
    assert!(a["due_at"].is_string(), "a retry is due at a time: {a}");
    assert_eq!(detail["status"], "ACTIONED");
    let last = detail["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["from_status"].clone(), last["actor"].clone()),
        ("ANALYZING".into(), "coordinator".into())
    );

    // The same decision delivered again (another message id) makes nothing new.
    let decision = detail["decisions"][0].clone();
    sys.ctx
        .bus
        .publish(Outgoing {
            subject: sys.ctx.bus.ns().decisions("acme"),
            msg_id: "redelivered".into(),
            correlation_id: None,
            headers: Vec::new(),
            payload: Bytes::from(decision.to_string()),
        })
        .await
        .unwrap();
    // A decision the analyzer never recorded is refused, whatever it says.
    let mut forged = decision.clone();
    forged["id"] = serde_json::json!(uuid::Uuid::new_v4());
    forged["recommended_action"]["action"] = "escalate".into();
    sys.ctx
        .bus
        .publish(Outgoing {
            subject: sys.ctx.bus.ns().decisions("acme"),
            msg_id: "forged".into(),
            correlation_id: None,
            headers: Vec::new(),
            payload: Bytes::from(forged.to_string()),
        })
        .await
        .unwrap();
    let pool = sys.ctx.store.pool().clone();
    eventually(WAIT, "the forged decision dead-lettered", || async {
        (count(
            &pool,
            "SELECT count(*) FROM dead_letters WHERE reason LIKE '%is not recorded%'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(count(&pool, "SELECT count(*) FROM actions").await, 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM action_transitions").await,
        1
    );
    sys.stop().await;
}

#[tokio::test]
async fn a_permanent_error_is_escalated_on_the_escalations_subject() {
    let sys = System::start_coordinated(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let mut escalations = sys
        .ctx
        .bus
        .subscribe(sys.ctx.bus.ns().escalations("acme"))
        .await
        .unwrap();
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("f1", "checkout", "card_declined"),
        )
        .await;
    assert_eq!(status, 202);
    let detail = actioned(&sys, &key).await;
    let a = &detail["actions"][0];
    assert_eq!(a["kind"], "escalate", "{detail}");
    assert_eq!(a["attempt"], 0);
    let msg = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut escalations))
        .await
        .expect("an escalation message")
        .unwrap();
    let e: EscalationV1 = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(e.action_id.to_string(), a["id"].as_str().unwrap());
    assert_eq!(e.incident_id.to_string(), detail["id"].as_str().unwrap());
    assert_eq!(e.tenant, "acme");
    assert_eq!(e.level, 1);
    sys.stop().await;
}

#[tokio::test]
async fn a_retry_into_an_open_breaker_is_held_and_spends_no_attempt() {
    let sys = System::start_coordinated(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    sys.ctx
        .breakers
        .force_open("stripe", "test", "vendor down")
        .await
        .unwrap();
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("f1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let detail = actioned(&sys, &key).await;
    let a = &detail["actions"][0];
    assert_eq!(a["kind"], "hold", "{detail}");
    assert_eq!(a["status"], "PENDING");
    let pool = sys.ctx.store.pool().clone();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM retry_attempts").await,
        0,
        "a hold spends no attempt"
    );
    sys.stop().await;
}

#[tokio::test]
async fn shadow_records_a_would_be_retry_and_off_records_nothing() {
    let sys = System::start_coordinated(&[]).await;
    let (shadow, shadow_key) = sys.tenant("shadowed").await;
    let (off, off_key) = sys.tenant("quiet").await;
    for (t, mode) in [(&shadow, "shadow"), (&off, "off")] {
        sys.ctx
            .store
            .set_tenant_mode(
                t.id,
                &TenantMode {
                    mode: mode.into(),
                    paused: false,
                },
                "test",
                "trying it out",
            )
            .await
            .unwrap();
    }
    for key in [&shadow_key, &off_key] {
        let (status, _) = sys
            .post(
                "/api/v1/events",
                key,
                &failure("f1", "checkout", "payment_timeout"),
            )
            .await;
        assert_eq!(status, 202);
    }
    let detail = actioned(&sys, &shadow_key).await;
    let a = &detail["actions"][0];
    assert_eq!(
        (a["kind"].clone(), a["shadow"].clone(), a["status"].clone()),
        ("retry".into(), true.into(), "PENDING".into())
    );
    assert!(
        a["reason"].as_str().unwrap().starts_with("shadow mode"),
        "{a}"
    );

    // `off`: the decision is made, and no action.
    let pool = sys.ctx.store.pool().clone();
    eventually(WAIT, "the quiet tenant's decision", || async {
        (count(
            &pool,
            &format!(
                "SELECT count(*) FROM decisions WHERE tenant_id = '{}'",
                off.id
            ),
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(
            &pool,
            &format!(
                "SELECT count(*) FROM actions WHERE tenant_id = '{}'",
                off.id
            )
        )
        .await,
        0
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM retry_attempts").await,
        0,
        "neither spends an attempt"
    );
    sys.stop().await;
}

#[tokio::test]
async fn a_resolution_cancels_the_retry_still_waiting() {
    let sys = System::start_coordinated(&[("AWFDRS__DETECTOR__AUTO_RESOLVE_SUCCESSES", "1")]).await;
    let (_, key) = sys.tenant("acme").await;
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("f1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let detail = actioned(&sys, &key).await;
    assert_eq!(detail["actions"][0]["status"], "SCHEDULED");
    let id = detail["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &awfdrs_tests::success("s1", "checkout"),
        )
        .await;
    assert_eq!(status, 202);
    // The view's parts are read one after another, so the incident and its
    // actions are waited for together.
    let closed: Value = eventually(
        WAIT,
        "the incident resolved, its retry cancelled",
        || async {
            let (_, d) = sys.get(&format!("/api/v1/incidents/{id}"), &key).await;
            (d["actions"][0]["status"] == "CANCELLED" && d["status"] == "RESOLVED").then_some(d)
        },
    )
    .await;
    assert_eq!(
        closed["actions"].as_array().map(Vec::len),
        Some(1),
        "{closed}"
    );
    sys.stop().await;
}

#[tokio::test]
async fn an_operator_resolving_an_incident_cancels_its_waiting_retry() {
    let sys = System::start_coordinated(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let (_, other) = sys.tenant("globex").await;
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("f1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let detail = actioned(&sys, &key).await;
    let id = detail["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/incidents/{id}/resolve");
    let (status, _) = sys.post(&path, &other, &serde_json::json!({})).await;
    assert_eq!(status, 404, "another tenant's incident is not there");
    let (status, resolved) = sys.post(&path, &key, &serde_json::json!({})).await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["status"], "RESOLVED");
    assert_eq!(resolved["resolved_by"], "operator:acme");
    assert_eq!(resolved["actions"][0]["status"], "CANCELLED");
    let last = resolved["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["actor"], "operator:acme");
    // Again: unchanged.
    let (status, again) = sys.post(&path, &key, &serde_json::json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(again["timeline"], resolved["timeline"]);
    sys.stop().await;
}

#[tokio::test]
async fn operators_list_and_cancel_actions_set_the_mode_and_pause_retries() {
    let sys = System::start_coordinated(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("f1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let detail = actioned(&sys, &key).await;
    let action = detail["actions"][0]["id"].as_str().unwrap().to_owned();
    let world = &sys.world;

    // Over HTTP: the list, with filters; a cancel; a second cancel is 409.
    let (status, page) = sys
        .get("/api/v1/actions?status=SCHEDULED&kind=retry", &key)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["id"], action.as_str());
    let (status, bad) = sys.get("/api/v1/actions?status=DONE", &key).await;
    assert_eq!(status, 422, "{bad}");
    // Over the command line: the same list.
    let listed: Value = serde_json::from_str(
        &cli(
            world,
            &[
                "actions",
                "list",
                "--tenant",
                "acme",
                "--status",
                "SCHEDULED",
                "--json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(listed[0]["id"], action.as_str());
    let cancelled = cli(
        world,
        &["actions", "cancel", &action, "--reason", "duplicate"],
    )
    .await;
    assert!(cancelled.contains("CANCELLED"), "{cancelled}");
    let (status, again) = sys
        .post(
            &format!("/api/v1/actions/{action}/cancel"),
            &key,
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 409, "{again}");

    // The mode, over HTTP and the command line.
    let put = sys
        .http
        .put(format!("{}/api/v1/mode", sys.base))
        .bearer_auth(&key)
        .json(&serde_json::json!({"mode": "shadow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let (status, mode) = sys.get("/api/v1/mode", &key).await;
    assert_eq!((status, mode["mode"].clone()), (200, "shadow".into()));
    let shown = cli(world, &["mode", "--tenant", "acme"]).await;
    assert_eq!(shown.trim(), "acme: shadow");
    cli(world, &["mode", "--tenant", "acme", "auto"]).await;

    // Paused: every tenant's retries wait, then go on when resumed.
    cli(world, &["pause", "--reason", "incident-review"]).await;
    let (_, mode) = sys.get("/api/v1/mode", &key).await;
    assert_eq!(
        (mode["mode"].clone(), mode["paused"].clone()),
        ("auto".into(), true.into())
    );
    cli(world, &["resume", "--reason", "done"]).await;
    cli(
        world,
        &["pause", "--tenant", "acme", "--reason", "tenant review"],
    )
    .await;
    let (_, mode) = sys.get("/api/v1/mode", &key).await;
    assert_eq!(mode["paused"], true);
    cli(world, &["resume", "--tenant", "acme", "--reason", "done"]).await;
    let (_, mode) = sys.get("/api/v1/mode", &key).await;
    assert_eq!(mode["paused"], false);
    sys.stop().await;
}

#[tokio::test]
async fn a_paused_tenant_retry_waits_for_an_operator() {
    let sys = System::start_coordinated(&[]).await;
    let (t, key) = sys.tenant("acme").await;
    sys.ctx
        .store
        .set_tenant_mode(
            t.id,
            &TenantMode {
                mode: "auto".into(),
                paused: true,
            },
            "test",
            "review",
        )
        .await
        .unwrap();
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("f1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let detail = actioned(&sys, &key).await;
    let a = &detail["actions"][0];
    assert_eq!(
        (a["kind"].clone(), a["status"].clone()),
        ("retry".into(), "PENDING".into()),
        "{a}"
    );
    assert!(a["reason"].as_str().unwrap().contains("paused"), "{a}");
    sys.stop().await;
}
