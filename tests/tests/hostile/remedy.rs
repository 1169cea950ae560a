//! The remediation routes under hostile input: path ids with NUL, CR/LF or
//! huge values, garbage filters of the action list, and bad bodies of the
//! mode and of a channel. Each is a 4xx problem, never a 5xx.

use serde_json::json;

use crate::case::{Auth, Body};
use crate::harness::H;
use crate::run::is_problem;

/// Every hostile remediation request, answered with a 4xx problem.
pub(crate) async fn remediation_refused(h: &H) -> Result<(), String> {
    let huge = "a".repeat(6_000);
    let huge_kind = format!("kind={}", "x".repeat(6_000));
    let mut requests: Vec<(reqwest::Method, String, Body)> = Vec::new();
    for verb in ["cancel", "approve"] {
        for id in [
            "%00",
            "%0D%0A",
            "x%0Ay",
            huge.as_str(),
            "00000000-0000-0000-0000-00000000000%00",
        ] {
            let path = format!("/api/v1/actions/{id}/{verb}");
            requests.push((reqwest::Method::POST, path, Body::Json(json!({}))));
        }
    }
    for query in [
        "status=%00",
        "status=PENDING%0D%0A",
        "kind=%00",
        "kind=retry%0Aevil",
        huge_kind.as_str(),
        "cursor=%FF%FE%00",
        "cursor=%0D%0A",
        "limit=-1",
        "limit=abc",
        "limit=%00",
        "limit=99999999999999999999999",
        "incident_id=%00",
        "status=",
    ] {
        let path = format!("/api/v1/actions?{query}");
        requests.push((reqwest::Method::GET, path, Body::None));
    }
    for body in [
        json!({"mode": "auto\u{0}"}),
        json!({"mode": "auto\r\n"}),
        json!({"mode": "x".repeat(200_000)}),
        json!({"mode": 5}),
        json!({"mode": null}),
        json!({"mode": "auto", "paused": true}),
        json!(["auto"]),
        json!({}),
    ] {
        requests.push((
            reqwest::Method::PUT,
            "/api/v1/mode".to_owned(),
            Body::Json(body),
        ));
    }
    // The channels: hostile ids and bodies; acknowledging hostile ids.
    for id in ["%00", "%0D%0A", "x%0Ay", huge.as_str()] {
        let path = format!("/api/v1/channels/{id}");
        requests.push((reqwest::Method::DELETE, path, Body::None));
        let path = format!("/api/v1/incidents/{id}/acknowledge");
        requests.push((reqwest::Method::POST, path, Body::Json(json!({}))));
    }
    let url = "http://127.0.0.1:9/hook";
    for body in [
        json!({"name": "a\u{0}b", "kind": "webhook", "url": url}),
        json!({"name": "a\r\nb", "kind": "webhook", "url": url}),
        json!({"name": "x".repeat(200_000), "kind": "webhook", "url": url}),
        json!({"name": "x", "kind": "webhook\u{0}", "url": url}),
        json!({"name": "x", "kind": "webhook", "url": "http://127.0.0.1/\u{0}"}),
        json!({"name": "x", "kind": "webhook", "url": format!("http://127.0.0.1/{huge}")}),
        json!({"name": "x", "kind": "pagerduty", "url": url, "routing_key": "k\r\n"}),
        json!({"name": "x", "kind": "webhook", "url": url, "min_severity": 5}),
        json!({"name": "x", "kind": "webhook", "url": url, "extra": 1}),
        json!(["webhook"]),
        json!({}),
    ] {
        requests.push((
            reqwest::Method::POST,
            "/api/v1/channels".to_owned(),
            Body::Json(body),
        ));
    }
    for (method, path, body) in &requests {
        let (_, req) = h.request(method.clone(), path, Auth::Bearer, body);
        let (status, ct, answer) = h.send(req).await;
        let shown: String = path.chars().take(80).collect();
        if !(400..500).contains(&status) {
            return Err(format!("{method} {shown}: {status}, not a 4xx: {answer}"));
        }
        is_problem(&ct, &answer, status).map_err(|e| format!("{method} {shown}: {e}"))?;
    }
    // Not JSON at all.
    let r = h
        .http
        .put(format!("{}/api/v1/mode", h.base))
        .header("content-type", "application/json")
        .bearer_auth(&h.acme.1)
        .body(b"{\"mode\": \"au\x00".to_vec());
    let (status, ct, answer) = h.send(r).await;
    if status != 400 && status != 422 {
        return Err(format!(
            "PUT /api/v1/mode with broken JSON: {status}: {answer}"
        ));
    }
    is_problem(&ct, &answer, status)
}
