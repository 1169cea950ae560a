//! `/api/v1/ready` tells the truth quickly: it answers within about a
//! second, turns 503 within a few seconds of NATS or PostgreSQL going away
//! (naming the cause), and 200 again when they are back. The broker is a
//! private nats-server this test kills and restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use awfdrs_tests::{System, database_url, eventually};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::process::{Child, Command};

/// Generous against "about a second", strict against the 5 s timeouts
/// of a readiness that waits out the publish timeout.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// "Within a few seconds" of a dependency going away.
const NOTICE_WITHIN: Duration = Duration::from_secs(6);
const WAIT: Duration = Duration::from_secs(30);

fn nats_server(port: u16, dir: &std::path::Path) -> Child {
    Command::new(
        awfdrs_tests::private::PrivateNats::binary()
            .expect("a nats-server 2.10+ (AWFDRS_NATS_SERVER_BIN, or scripts/services.sh's)"),
    )
    .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
    .arg(dir)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .kill_on_drop(true)
    .spawn()
    .expect("spawn nats-server")
}

async fn wait_for_port(port: u16) {
    eventually(WAIT, "nats-server listening", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

async fn ready(sys: &System) -> (u16, Value) {
    let resp = sys
        .http
        .get(format!("{}/api/v1/ready", sys.base))
        .timeout(ANSWER_WITHIN)
        .send()
        .await
        .expect("/ready answers within about a second");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn ready_turns_503_with_the_cause_when_nats_or_postgres_goes_away_and_200_when_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("awfdrs-nats-{}", uuid::Uuid::new_v4()));
    let mut broker = nats_server(port, &dir);
    wait_for_port(port).await;
    let url = format!("nats://127.0.0.1:{port}");
    let sys = System::start(&[("NATS_URL", url.as_str())]).await;

    let (status, body) = ready(&sys).await;
    assert_eq!(status, 200, "{body}");

    // The broker goes away.
    broker.kill().await.unwrap();
    let body = eventually(
        NOTICE_WITHIN,
        "/ready 503 after the broker died",
        || async {
            let (status, body) = ready(&sys).await;
            (status == 503).then_some(body)
        },
    )
    .await;
    assert_eq!(body["checks"]["postgres"], "ok", "{body}");
    let cause = body["checks"]["nats"].as_str().unwrap();
    assert!(cause.contains("NATS"), "the cause is named: {cause}");

    // It comes back.
    let mut broker = nats_server(port, &dir);
    wait_for_port(port).await;
    eventually(WAIT, "/ready 200 after the broker restarted", || async {
        (ready(&sys).await.0 == 200).then_some(())
    })
    .await;

    // The database goes away.
    let admin: PgConnectOptions = database_url().parse().unwrap();
    let mut conn = admin.database("postgres").connect().await.unwrap();
    let sql = format!("DROP DATABASE {} WITH (FORCE)", sys.world.database);
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let body = eventually(
        NOTICE_WITHIN,
        "/ready 503 after the database went",
        || async {
            let (status, body) = ready(&sys).await;
            (status == 503).then_some(body)
        },
    )
    .await;
    assert_eq!(body["checks"]["nats"], "ok", "{body}");
    let cause = body["checks"]["postgres"].as_str().unwrap();
    assert!(
        cause.contains("does not exist"),
        "the cause is named: {cause}"
    );

    sys.stop().await;
    broker.kill().await.ok();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn store_errors_name_their_cause_and_classify_themselves() {
    use awfdrs_store::{DbFailure, Store, StoreError};
    let world = awfdrs_tests::World::new().await;
    let store = Store::connect(&world.database_url, 2, Duration::from_secs(5))
        .await
        .unwrap();

    // A NUL PostgreSQL cannot store: refused, permanent, PostgreSQL's words.
    let e = StoreError::from(
        sqlx::query("SELECT $1::text")
            .bind("a\0b")
            .execute(store.pool())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.failure(), Some(DbFailure::Refused), "{e}");
    assert!(!e.is_transient() && !e.is_unavailable());
    assert!(e.to_string().starts_with("database refused: 22"), "{e}");
    assert!(e.to_string().contains("0x00"), "{e}");

    // A constraint: named.
    let insert = "INSERT INTO dead_letters (stage, subject, stream_sequence, delivered, consumer, reason, payload)
                  VALUES ('detector', 's', 1, 1, 'c', 'r', '')";
    sqlx::query(insert).execute(store.pool()).await.unwrap();
    let e = StoreError::from(sqlx::query(insert).execute(store.pool()).await.unwrap_err());
    assert_eq!(e.failure(), Some(DbFailure::Constraint));
    let constraint = e.constraint().unwrap().to_owned();
    assert!(e.to_string().contains(&constraint), "{e}");
    assert_eq!(e.sqlstate().as_deref(), Some("23505"));

    // Nothing listening: unavailable, and says so.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = Store::connect(
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
        1,
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(e.is_unavailable() && e.is_transient(), "{e}");
    assert!(e.to_string().starts_with("database unavailable: "), "{e}");

    store.pool().close().await;
    let admin: PgConnectOptions = database_url().parse().unwrap();
    let mut conn = admin.database("postgres").connect().await.unwrap();
    let sql = format!("DROP DATABASE {} WITH (FORCE)", world.database);
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();
}
