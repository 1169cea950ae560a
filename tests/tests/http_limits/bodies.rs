//! Bodies and connections are bounded: none is read before
//! authentication, signed bodies are limited in size and number, and what
//! is beyond a limit waits for a free slot.

use std::time::Duration;

use awfdrs_tests::{System, eventually, failure, read_answer};
use tokio::io::AsyncWriteExt as _;

use crate::{WAIT, assert_problem};

#[tokio::test]
async fn a_request_without_credentials_is_refused_before_its_body_is_read() {
    let sys = System::start(&[]).await;
    let (tenant, _) = sys.tenant("acme").await;
    for (path, auth) in [
        ("/api/v1/events/batch", ""),
        ("/api/v1/events", ""),
        (
            "/api/v1/events/batch",
            "Authorization: Bearer awf_unknown\r\n",
        ),
        ("/api/v1/events/batch", "Authorization: Basic YTpi\r\n"),
    ] {
        // 8 MiB announced, 1 KiB sent: the answer comes while the client
        // holds the rest.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: 8388608\r\n\r\n[{}",
            " ".repeat(1024)
        );
        let mut conn = sys.raw(&head).await;
        let answer = read_answer(&mut conn, WAIT)
            .await
            .unwrap_or_else(|| panic!("no answer to {path} {auth:?} before the body was sent"));
        assert_problem(&answer, 401);
    }
    assert_eq!(sys.rows("ingest_keys", tenant.id).await, 0);
    sys.stop().await;
}

fn signed_head(path: &str, tenant: &str, ts: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Awfdrs-Tenant: {tenant}\r\nwebhook-id: msg_1\r\nwebhook-timestamp: {ts}\r\n\
         webhook-signature: v1,AAAA\r\n{extra}Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn signed_bodies_are_bounded_in_size_and_in_number() {
    let sys = System::start(&[("AWFDRS__HTTP__MAX_UNAUTHENTICATED_BODIES", "1")]).await;
    let now = chrono::Utc::now().timestamp().to_string();
    // A signed batch above the webhook cap (1 MiB), far below the bearer
    // batch limit (8 MiB): refused before it is read.
    let mut big = sys
        .raw(&signed_head(
            "/api/v1/events/batch",
            "acme",
            &now,
            2 << 20,
            "",
        ))
        .await;
    let answer = read_answer(&mut big, WAIT).await.expect("an answer");
    assert_problem(&answer, 413);

    // One stalled signed upload holds the only slot; the next signed
    // request is turned away without its body being read.
    let _stalled = sys
        .raw(&signed_head("/api/v1/events", "acme", &now, 10_000, ""))
        .await;
    let answer = eventually(WAIT, "a 503 while the slot is taken", || async {
        let mut conn = sys
            .raw(&signed_head("/api/v1/events", "acme", &now, 100_000, ""))
            .await;
        let answer = read_answer(&mut conn, WAIT).await?;
        (answer.status == 503).then_some(answer)
    })
    .await;
    assert_problem(&answer, 503);
    assert!(answer.header("retry-after").is_some(), "{answer:?}");
    sys.stop().await;
}

#[tokio::test]
async fn bodies_buffered_at_once_are_bounded_over_every_request() {
    let limit = "262144";
    let sys = System::start(&[
        ("AWFDRS__HTTP__BATCH_BODY_LIMIT_BYTES", limit),
        ("AWFDRS__HTTP__WEBHOOK_BATCH_BODY_LIMIT_BYTES", limit),
        ("AWFDRS__HTTP__MAX_BUFFERED_BODY_BYTES", limit),
    ])
    .await;
    let (_, key) = sys.tenant("acme").await;
    // An authenticated upload that stalls after 200 KiB of its 250 KiB.
    let head = format!(
        "POST /api/v1/events/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 256000\r\n\r\n[{}",
        " ".repeat(200 * 1024)
    );
    let _stalled = sys.raw(&head).await;
    let body = format!("[{}]", " ".repeat(100 * 1024));
    let answer = eventually(WAIT, "a 503 while the budget is spent", || async {
        let (status, body) = sys
            .post_raw("/api/v1/events/batch", Some(&key), body.clone().into())
            .await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(answer["status"], 503, "{answer}");
    sys.stop().await;
}

#[tokio::test]
async fn connections_and_requests_beyond_their_limits_wait_for_a_free_one() {
    let sys = System::start(&[
        ("AWFDRS__HTTP__MAX_CONNECTIONS", "2"),
        ("AWFDRS__HTTP__MAX_CONCURRENT_REQUESTS", "1"),
    ])
    .await;
    let (_, key) = sys.tenant("acme").await;
    let health = "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n";

    // The one request slot: a body still arriving holds it.
    let body = failure("slot", "checkout", "x").to_string();
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut holder = sys.raw(&head).await;
    // The second connection is served, but its request waits for the slot.
    let mut second = sys.raw(health).await;
    assert!(
        read_answer(&mut second, Duration::from_millis(500))
            .await
            .is_none(),
        "a second request ran beside the first"
    );
    // A third connection is not even taken in.
    let mut third = sys.raw(health).await;
    assert!(
        read_answer(&mut third, Duration::from_millis(500))
            .await
            .is_none(),
        "a third connection was served"
    );

    holder.write_all(body.as_bytes()).await.unwrap();
    let answer = read_answer(&mut holder, WAIT).await.expect("an answer");
    assert_eq!(answer.status, 202, "{answer:?}");
    let answer = read_answer(&mut second, WAIT).await.expect("an answer");
    assert_eq!(answer.status, 200);
    drop(holder);
    let answer = read_answer(&mut third, WAIT).await.expect("an answer");
    assert_eq!(answer.status, 200);
    sys.stop().await;
}
