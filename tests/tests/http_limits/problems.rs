//! Every error answer is a problem, garbage in a query or a cursor
//! included.

use awfdrs_tests::{System, read_answer};

use crate::{WAIT, assert_problem};

#[tokio::test]
async fn every_error_answer_is_a_problem() {
    let sys = System::start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let cases = [
        ("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(), 404),
        (
            format!(
                "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
            ),
            405,
        ),
        (
            format!(
                "GET /api/v1/incidents?workflow_id={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(10_000)
            ),
            414,
        ),
        (
            format!(
                "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(20_000)
            ),
            431,
        ),
        (
            format!(
                "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Content-Length: 300000\r\n\r\n"
            ),
            413,
        ),
        // 101 headers (Host and 100 more), and far more, each small.
        (
            format!(
                "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n{}\r\n",
                headers(100)
            ),
            431,
        ),
        (
            format!(
                "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n{}\r\n",
                headers(2_000)
            ),
            431,
        ),
    ];
    for (request, status) in cases {
        let mut conn = sys.raw(&request).await;
        let answer = read_answer(&mut conn, WAIT)
            .await
            .unwrap_or_else(|| panic!("no answer for {status}"));
        assert_problem(&answer, status);
    }
    // The most headers taken: Host and 99 more.
    let mut conn = sys
        .raw(&format!(
            "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n{}\r\n",
            headers(99)
        ))
        .await;
    let answer = read_answer(&mut conn, WAIT).await.expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    sys.stop().await;
}

/// `n` small headers, each a line.
fn headers(n: usize) -> String {
    (0..n).map(|i| format!("X-H{i}: v\r\n")).collect()
}

#[tokio::test]
async fn garbage_query_parameters_and_cursors_are_client_errors() {
    let sys = System::start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let far = |micros: i64| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{micros}|{}", uuid::Uuid::nil()))
    };
    let cases = [
        "workflow_id=%00".to_owned(),
        "vendor=stri%00pe".to_owned(),
        "status=NEW%00".to_owned(),
        "limit=abc".to_owned(),
        "limit=99999999999999999999".to_owned(),
        "cursor=%00".to_owned(),
        "cursor=not-base64!".to_owned(),
        format!("cursor={}", far(i64::MIN)),
        format!("cursor={}", far(-8_000_000_000_000_000_000)),
        format!("cursor={}", far(8_000_000_000_000_000_000)),
        "nonsense=1".to_owned(),
    ];
    for query in cases {
        let resp = sys
            .http
            .get(format!("{}/api/v1/incidents?{query}", sys.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(status == 400 || status == 422, "{query}: {status}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"), "{query}");
    }
    let (status, _) = sys.get("/api/v1/incidents/%00", &key).await;
    assert_eq!(status, 404);
    sys.stop().await;
}
