//! The HTTP API described: the served OpenAPI document lists exactly the
//! routes the gateway serves, and every route it lists reaches a handler.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use awfdrs_tests::{System, failure};
use serde_json::Value;

/// Every method and path the gateway's router serves.
const SERVED: &[(&str, &str)] = &[
    ("post", "/api/v1/events"),
    ("post", "/api/v1/events/batch"),
    ("get", "/api/v1/incidents"),
    ("get", "/api/v1/incidents/{id}"),
    ("post", "/api/v1/incidents/{id}/resolve"),
    ("post", "/api/v1/incidents/{id}/acknowledge"),
    ("get", "/api/v1/actions"),
    ("post", "/api/v1/actions/{id}/cancel"),
    ("post", "/api/v1/actions/{id}/approve"),
    ("get", "/api/v1/mode"),
    ("put", "/api/v1/mode"),
    ("put", "/api/v1/workflows/{workflow_id}/callback"),
    ("delete", "/api/v1/workflows/{workflow_id}/callback"),
    ("post", "/api/v1/channels"),
    ("get", "/api/v1/channels"),
    ("delete", "/api/v1/channels/{id}"),
    ("get", "/api/v1/breakers"),
    ("post", "/api/v1/breakers/{vendor}/reset"),
    ("get", "/metrics"),
    ("get", "/api/v1/health"),
    ("get", "/api/v1/ready"),
    ("get", "/api/v1/openapi.json"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The fallbacks' problem types: an answer of one of them did not reach a
/// route's handler.
const FALLBACKS: [&str; 2] = ["/problems/not-found", "/problems/method-not-allowed"];

async fn document(sys: &System) -> Value {
    let resp = sys
        .http
        .get(format!("{}/api/v1/openapi.json", sys.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "served without credentials");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    resp.json().await.unwrap()
}

/// Every (method, path) of the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| ((*m).to_owned(), path.clone()))
        })
        .collect()
}

/// A concrete target for a documented path.
fn target(path: &str) -> String {
    path.replace("{id}", &uuid::Uuid::new_v4().to_string())
        .replace("{vendor}", "stripe")
        .replace("{workflow_id}", "checkout")
}

async fn send(sys: &System, method: &str, path: &str, key: Option<&str>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let mut req = sys.http.request(method, format!("{}{path}", sys.base));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_every_served_route() {
    let sys = System::start(&[]).await;
    let doc = document(&sys).await;
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "{version}");

    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(operations(&doc), served);

    // No method beyond the documented ones is served on a documented path.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS.iter().filter(|m| item.get(**m).is_none()) {
            let (status, body) = send(&sys, method, &target(path), None).await;
            assert_eq!(status, 405, "{method} {path}: {body}");
            assert_eq!(body["type"], "/problems/method-not-allowed");
        }
    }

    // The shapes the contract names.
    let schemas = &doc["components"]["schemas"];
    let problem = schemas["Problem"]["properties"]
        .as_object()
        .expect("Problem");
    for field in ["type", "title", "status", "detail", "errors"] {
        assert!(problem.contains_key(field), "Problem lacks {field}");
    }
    let field_error = schemas["FieldError"]["properties"].as_object().unwrap();
    assert!(field_error.contains_key("field") && field_error.contains_key("reason"));
    let event = &schemas["WorkflowEventV1"];
    let required: BTreeSet<&str> = event["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        required,
        BTreeSet::from([
            "idempotency_key",
            "workflow_id",
            "event_type",
            "occurred_at"
        ])
    );
    assert_eq!(event["additionalProperties"], false);
    // An event the tests send uses only fields the schema lists.
    let properties = event["properties"].as_object().unwrap();
    for field in failure("k", "wf", "boom").as_object().unwrap().keys() {
        assert!(properties.contains_key(field), "undocumented field {field}");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(
            schemes
                .values()
                .any(|s| s["in"] == "header" && s["name"] == name),
            "no security scheme for {name}"
        );
    }
    let ingest = &doc["paths"]["/api/v1/events"]["post"]["responses"];
    for status in [
        "202", "200", "400", "401", "409", "413", "422", "429", "503",
    ] {
        assert!(
            ingest.get(status).is_some(),
            "POST /api/v1/events: {status}"
        );
    }
    let params = doc["paths"]["/api/v1/incidents"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let names: BTreeSet<&str> = params.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["status", "workflow_id", "vendor", "limit", "cursor"])
    );
    sys.stop().await;
}

#[tokio::test]
async fn every_documented_route_reaches_its_handler() {
    let sys = System::start(&[]).await;
    let doc = document(&sys).await;
    let (_, key) = sys.tenant("acme").await;
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let secured = op["security"].as_array().is_some_and(|reqs| {
            reqs.iter()
                .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        });
        // Without credentials: a secured route's handler refuses the
        // caller, an open one answers.
        let (status, body) = send(&sys, &method, &target(&path), None).await;
        assert!(
            !FALLBACKS.contains(&body["type"].as_str().unwrap_or_default()),
            "{method} {path} fell through to {body}"
        );
        if secured {
            assert_eq!(status, 401, "{method} {path}: {body}");
            assert_eq!(body["type"], "/problems/unauthorized");
        } else {
            assert_eq!(status, 200, "{method} {path}: {body}");
        }
        // With a tenant's key: an answer the document lists.
        let (status, body) = if method == "post" && path == "/api/v1/events" {
            sys.post(&path, &key, &failure("doc-1", "wf", "boom")).await
        } else {
            send(&sys, &method, &target(&path), Some(&key)).await
        };
        assert!(
            op["responses"].get(status.to_string()).is_some(),
            "{method} {path} answered {status}, undocumented: {body}"
        );
    }
    sys.stop().await;
}
