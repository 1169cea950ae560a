//! Approval, per-error-code modes and pauses end to end: a retry that waits
//! for an operator sends nothing, however many rounds pass, until it is
//! approved (or the pause ends); it then passes the same safety checks as
//! any retry and is fired once. The stricter of the tenant's and the error
//! code's mode applies, and approval only from `approve_min_severity` up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use awfdrs_domain::RetryCommandV1;
use awfdrs_store::TenantMode;
use awfdrs_tests::{System, cli, eventually, failure};
use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(90);
/// Many rounds of the scheduler and of the coordinator's checks (every 50 ms here).
const ROUNDS: Duration = Duration::from_millis(1500);
const QUICK: (&str, &str) = ("AWFDRS__COORDINATOR__HOLD_CHECK_MS", "50");
const SCHEDULER: (&str, &str) = ("AWFDRS__SCHEDULER__MAX_SLEEP_MS", "50");
/// No breaker-opened decisions: these tests drive the breaker themselves.
const NO_BREAKER_LOOKS: (&str, &str) = ("AWFDRS__ANALYZER__BREAKER_CHECK_MS", "3600000");

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn set_mode(sys: &System, tenant: Uuid, mode: &str) {
    let m = TenantMode {
        mode: mode.into(),
        paused: false,
    };
    sys.ctx
        .store
        .set_tenant_mode(tenant, &m, "test", "trying it out")
        .await
        .unwrap();
}

/// The tenant's only action of `kind`, once it is in `status`.
async fn action(sys: &System, key: &str, kind: &str, status: &str) -> Value {
    let what = format!("a {kind} action {status}");
    eventually(WAIT, &what, || async {
        let (_, page) = sys
            .get(&format!("/api/v1/actions?kind={kind}&status={status}"), key)
            .await;
        page["items"].as_array()?.first().cloned()
    })
    .await
}

/// Nothing on `commands` for a while.
async fn silent(commands: &mut Commands, why: &str) {
    tokio::time::sleep(ROUNDS).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1), commands.next())
            .await
            .is_err(),
        "a retry command was published {why}"
    );
}

/// The next retry command, which must retry `action`.
async fn fired(commands: &mut Commands, action: &str) {
    let msg = tokio::time::timeout(WAIT, commands.next())
        .await
        .expect("a retry command")
        .unwrap();
    let command: RetryCommandV1 = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(command.action_id.to_string(), action);
}

/// Every retry command of the test's namespace.
type Commands = std::pin::Pin<Box<dyn futures::Stream<Item = awfdrs_bus::Seen> + Send>>;

async fn commands(sys: &System) -> Commands {
    let s = sys
        .ctx
        .bus
        .subscribe(format!("{}.commands.>", sys.ns().as_str()))
        .await
        .unwrap();
    Box::pin(s)
}

/// A copy of the shipped rules with `edit` applied to error_codes.yaml.
fn rules_with(edit: impl Fn(String) -> String) -> PathBuf {
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
    let codes = std::fs::read_to_string(dir.join("error_codes.yaml")).unwrap();
    let edited = edit(codes.clone());
    assert_ne!(edited, codes, "the shipped rules changed");
    std::fs::write(dir.join("error_codes.yaml"), edited).unwrap();
    dir
}

#[tokio::test]
async fn approval_holds_until_approved() {
    let sys = System::start_all(&[QUICK, SCHEDULER]).await;
    let (acme, key) = sys.tenant("acme").await;
    let (_, other) = sys.tenant("globex").await;
    set_mode(&sys, acme.id, "approve").await;
    let mut commands = commands(&sys).await;
    let e = failure("f1", "checkout", "payment_timeout");
    assert_eq!(sys.post("/api/v1/events", &key, &e).await.0, 202);
    let waiting = action(&sys, &key, "retry", "PENDING").await;
    assert_eq!(waiting["waiting_for"], "approval", "{waiting}");
    assert!(waiting["approved_by"].is_null());
    let id = waiting["id"].as_str().unwrap().to_owned();
    silent(&mut commands, "before the approval").await;
    let (_, still) = sys.get("/api/v1/actions?kind=retry", &key).await;
    assert_eq!(still["items"][0]["status"], "PENDING", "{still}");

    // Another tenant's is not there; an action that waits for nothing is a conflict.
    let approve = format!("/api/v1/actions/{id}/approve");
    let (status, body) = sys.post(&approve, &other, &json!({})).await;
    assert_eq!(status, 404, "{body}");
    let e = failure("f2", "billing", "card_declined");
    assert_eq!(sys.post("/api/v1/events", &key, &e).await.0, 202);
    let escalated = action(&sys, &key, "escalate", "SUCCEEDED").await;
    let path = format!(
        "/api/v1/actions/{}/approve",
        escalated["id"].as_str().unwrap()
    );
    let (status, body) = sys.post(&path, &key, &json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "/problems/action-conflict", "{body}");

    let (status, approved) = sys.post(&approve, &key, &json!({})).await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["approved_by"], "operator:acme");
    // Approving again, before it moved on or after, changes nothing or is a conflict.
    let (status, again) = sys.post(&approve, &key, &json!({})).await;
    assert!(status == 200 || status == 409, "{status} {again}");
    if status == 200 {
        assert_eq!(again["approved_at"], approved["approved_at"]);
    }

    let scheduled = action(&sys, &key, "retry", "SCHEDULED").await;
    assert_eq!(scheduled["id"], id.as_str());
    assert!(
        scheduled["reason"]
            .as_str()
            .unwrap()
            .contains("approved by operator:acme"),
        "{scheduled}"
    );
    assert!(scheduled["waiting_for"].is_null());
    fired(&mut commands, &id).await;
    silent(&mut commands, "twice").await;
    let pool = sys.ctx.store.pool().clone();
    let moved = format!(
        "SELECT count(*) FROM action_transitions
         WHERE action_id = '{id}' AND to_status = 'SCHEDULED' AND actor = 'coordinator'"
    );
    assert_eq!(count(&pool, &moved).await, 1);
    let approvals = format!(
        "SELECT count(*) FROM action_transitions
         WHERE action_id = '{id}' AND actor = 'operator:acme' AND reason = 'approved'"
    );
    assert_eq!(count(&pool, &approvals).await, 1);
    sys.stop().await;
}

#[tokio::test]
async fn the_command_line_approves_and_an_approval_into_an_open_breaker_makes_a_hold() {
    let sys = System::start_all(&[QUICK, SCHEDULER, NO_BREAKER_LOOKS]).await;
    let (acme, key) = sys.tenant("acme").await;
    set_mode(&sys, acme.id, "approve").await;
    let mut commands = commands(&sys).await;
    let e = failure("f1", "checkout", "payment_timeout");
    assert_eq!(sys.post("/api/v1/events", &key, &e).await.0, 202);
    let waiting = action(&sys, &key, "retry", "PENDING").await;
    let id = waiting["id"].as_str().unwrap().to_owned();
    sys.ctx
        .breakers
        .force_open("stripe", "test", "vendor down")
        .await
        .unwrap();
    let out = cli(&sys.world, &["actions", "approve", &id, "--tenant", "acme"]).await;
    assert!(out.contains("approved by operator:"), "{out}");

    let hold = action(&sys, &key, "hold", "PENDING").await;
    assert_eq!(hold["attempt"], waiting["attempt"]);
    let (_, retry) = sys.get("/api/v1/actions?kind=retry", &key).await;
    let retry = &retry["items"][0];
    assert_eq!(
        (retry["status"].clone(), retry["waiting_for"].clone()),
        ("PENDING".into(), "hold".into()),
        "{retry}"
    );
    let pool = sys.ctx.store.pool().clone();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM retry_attempts").await,
        0,
        "a hold spends no attempt"
    );
    silent(&mut commands, "into an open breaker").await;

    // The breaker closes: the hold is released into the approved retry, fired once.
    sys.ctx.breakers.reset("stripe", "test").await.unwrap();
    action(&sys, &key, "hold", "SUCCEEDED").await;
    fired(&mut commands, &id).await;
    silent(&mut commands, "twice").await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM actions WHERE kind = 'retry'").await,
        1
    );
    sys.stop().await;
}

#[tokio::test]
async fn a_code_mode_in_the_rules_overrides_a_tenant_in_auto() {
    let rules = rules_with(|codes| {
        codes
            .replace(
                "    retry_policy: payment_timeout\n",
                "    retry_policy: payment_timeout\n    mode: shadow\n",
            )
            .replace(
                "    retry_policy: dns\n",
                "    retry_policy: dns\n    mode: off\n",
            )
    });
    let sys = System::start_all(&[QUICK, ("AWFDRS__RULES__DIR", rules.to_str().unwrap())]).await;
    let (acme, key) = sys.tenant("acme").await;
    let mut commands = commands(&sys).await;
    for (k, flow, code) in [
        ("f1", "checkout", "payment_timeout"),
        ("f2", "lookup", "dns_failure"),
    ] {
        assert_eq!(
            sys.post("/api/v1/events", &key, &failure(k, flow, code))
                .await
                .0,
            202
        );
    }
    let shadow = action(&sys, &key, "retry", "PENDING").await;
    assert_eq!(shadow["shadow"], true, "{shadow}");
    assert!(
        shadow["reason"]
            .as_str()
            .unwrap()
            .starts_with("shadow mode")
    );
    let pool = sys.ctx.store.pool().clone();
    eventually(WAIT, "both decisions", || async {
        (sys.rows("decisions", acme.id).await == 2).then_some(())
    })
    .await;
    silent(&mut commands, "in shadow or off mode").await;
    // `off`: the decision only.
    assert_eq!(sys.rows("actions", acme.id).await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM retry_attempts").await, 0);
    sys.stop().await;
}

#[tokio::test]
async fn a_retry_below_the_approval_threshold_goes_ahead_without_approval() {
    let rules = rules_with(|codes| format!("approve_min_severity: critical\n{codes}"));
    let sys = System::start_all(&[QUICK, ("AWFDRS__RULES__DIR", rules.to_str().unwrap())]).await;
    let (acme, key) = sys.tenant("acme").await;
    set_mode(&sys, acme.id, "approve").await;
    let e = failure("f1", "checkout", "payment_timeout");
    assert_eq!(sys.post("/api/v1/events", &key, &e).await.0, 202);
    let scheduled = action(&sys, &key, "retry", "SCHEDULED").await;
    assert!(scheduled["approved_by"].is_null(), "{scheduled}");
    sys.stop().await;
}

#[tokio::test]
async fn a_paused_retry_is_fired_after_the_resume_and_never_during_the_pause() {
    let sys = System::start_all(&[QUICK, SCHEDULER]).await;
    let (_, key) = sys.tenant("acme").await;
    let mut commands = commands(&sys).await;
    let world = &sys.world;
    cli(
        world,
        &["pause", "--tenant", "acme", "--reason", "incident review"],
    )
    .await;
    let e = failure("f1", "checkout", "payment_timeout");
    assert_eq!(sys.post("/api/v1/events", &key, &e).await.0, 202);
    let waiting = action(&sys, &key, "retry", "PENDING").await;
    assert_eq!(waiting["waiting_for"], "pause", "{waiting}");
    let id = waiting["id"].as_str().unwrap().to_owned();
    silent(&mut commands, "during the pause").await;
    let (_, still) = sys.get("/api/v1/actions?kind=retry", &key).await;
    assert_eq!(still["items"][0]["status"], "PENDING");

    cli(world, &["resume", "--tenant", "acme", "--reason", "done"]).await;
    let scheduled = action(&sys, &key, "retry", "SCHEDULED").await;
    assert!(
        scheduled["reason"]
            .as_str()
            .unwrap()
            .contains("resumed after the pause"),
        "{scheduled}"
    );
    fired(&mut commands, &id).await;
    silent(&mut commands, "twice").await;
    sys.stop().await;
}

#[tokio::test]
async fn an_approved_retry_of_a_paused_tenant_waits_for_the_resume_too() {
    let sys = System::start_all(&[QUICK, SCHEDULER]).await;
    let (acme, key) = sys.tenant("acme").await;
    let paused = TenantMode {
        mode: "approve".into(),
        paused: true,
    };
    let store = &sys.ctx.store;
    store
        .set_tenant_mode(acme.id, &paused, "test", "review")
        .await
        .unwrap();
    let mut commands = commands(&sys).await;
    let e = failure("f1", "checkout", "payment_timeout");
    assert_eq!(sys.post("/api/v1/events", &key, &e).await.0, 202);
    let waiting = action(&sys, &key, "retry", "PENDING").await;
    assert_eq!(waiting["waiting_for"], "approval", "{waiting}");
    let id = waiting["id"].as_str().unwrap().to_owned();
    let approve = format!("/api/v1/actions/{id}/approve");
    assert_eq!(sys.post(&approve, &key, &json!({})).await.0, 200);
    silent(&mut commands, "while paused").await;
    let (_, still) = sys.get("/api/v1/actions?kind=retry", &key).await;
    assert_eq!(still["items"][0]["status"], "PENDING", "{still}");

    cli(
        &sys.world,
        &["resume", "--tenant", "acme", "--reason", "done"],
    )
    .await;
    action(&sys, &key, "retry", "SCHEDULED").await;
    fired(&mut commands, &id).await;
    sys.stop().await;
}
