//! Timeouts close what stalls: headers that never end, an idle
//! connection, a body that stops coming.

use std::time::Duration;

use awfdrs_tests::{System, closed_within, read_answer};
use tokio::io::AsyncWriteExt as _;

use crate::{WAIT, assert_problem};

const SHORT_TIMEOUTS: &[(&str, &str)] = &[
    ("AWFDRS__HTTP__HEADER_READ_TIMEOUT_MS", "300"),
    ("AWFDRS__HTTP__BODY_READ_TIMEOUT_MS", "300"),
    ("AWFDRS__HTTP__IDLE_TIMEOUT_MS", "600"),
];

#[tokio::test]
async fn a_connection_that_stalls_in_its_headers_or_idles_is_closed() {
    let sys = System::start(SHORT_TIMEOUTS).await;
    // Slowloris: part of a request head, then nothing.
    let mut slow = sys
        .raw("POST /api/v1/events HTTP/1.1\r\nHost: x\r\nX-A: ")
        .await;
    // Half a head, and then a byte every 100 ms: still closed, since the
    // timeout runs from the request's first byte.
    let mut dribble = sys.raw("GET /api/v1/health HTTP/1.1\r\n").await;
    let dribbler = tokio::spawn(async move {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if dribble.write_all(b"X").await.is_err() {
                return true;
            }
        }
        false
    });
    // A connection that never sends anything.
    let mut silent = sys.raw("").await;
    // A keep-alive connection after a whole request.
    let mut idle = sys
        .raw("GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let first = read_answer(&mut idle, WAIT).await.expect("an answer");
    assert_eq!(first.status, 200);

    assert!(closed_within(&mut slow, WAIT).await, "slow head kept open");
    assert!(closed_within(&mut silent, WAIT).await, "silent kept open");
    assert!(closed_within(&mut idle, WAIT).await, "idle kept open");
    assert!(dribbler.await.unwrap(), "dribbled head kept open");
    sys.stop().await;
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_and_its_connection_closed() {
    let sys = System::start(SHORT_TIMEOUTS).await;
    let (_, key) = sys.tenant("acme").await;
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"idem"
    );
    let mut conn = sys.raw(&head).await;
    let answer = read_answer(&mut conn, WAIT).await.expect("an answer");
    assert_problem(&answer, 408);
    assert!(closed_within(&mut conn, WAIT).await);
    sys.stop().await;
}
