//! The channels API and CLI: added with a secret shown once, listed
//! without secrets, removed; bad channels are a clear 422.

use awfdrs_tests::System;
use serde_json::json;

use crate::support::{add_channel, channel, post_channel};

#[tokio::test]
async fn channels_are_added_listed_without_secrets_and_removed() {
    let sys = System::start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let (_, other_key) = sys.tenant("globex").await;
    let (first, _) = add_channel(
        &sys,
        &key,
        channel("ops", "webhook", "http://127.0.0.1:9/a"),
    )
    .await;
    let mut pd = channel("pager", "pagerduty", "http://127.0.0.1:9/b");
    pd["routing_key"] = json!("R0UT1NG");
    pd["min_severity"] = json!("high");
    let (second, _) = add_channel(&sys, &key, pd).await;

    let (status, list) = sys.get("/api/v1/channels", &key).await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], first.to_string());
    assert_eq!(items[1]["id"], second.to_string());
    assert_eq!(items[0]["min_severity"], "low");
    assert_eq!(items[1]["min_severity"], "high");
    assert_eq!(items[1]["routing_key"], "R0UT1NG");
    assert!(items.iter().all(|c| c.get("secret").is_none()), "{list}");
    let (_, others) = sys.get("/api/v1/channels", &other_key).await;
    assert_eq!(
        others["items"],
        json!([]),
        "another tenant's are not listed"
    );

    let delete = |key: &str, id: String| {
        let req = sys
            .http
            .delete(format!("{}/api/v1/channels/{id}", sys.base))
            .bearer_auth(key);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        delete(&other_key, first.to_string()).await,
        404,
        "another tenant's"
    );
    assert_eq!(delete(&key, "not-a-uuid".into()).await, 400);
    assert_eq!(delete(&key, first.to_string()).await, 204);
    assert_eq!(
        delete(&key, first.to_string()).await,
        404,
        "already removed"
    );
    let (_, list) = sys.get("/api/v1/channels", &key).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    sys.stop().await;
}

#[tokio::test]
async fn bad_channels_are_refused_with_a_422_naming_the_field() {
    let sys = System::start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let ok = "http://127.0.0.1:9/hook";
    let long = format!("http://127.0.0.1:9/{}", "a".repeat(3000));
    for (body, field) in [
        (json!({"name": "x", "kind": "email", "url": ok}), "body"),
        (
            json!({"name": "x", "kind": "webhook", "url": ok, "min_severity": "urgent"}),
            "body",
        ),
        (
            json!({"name": "x", "kind": "pagerduty", "url": ok}),
            "routing_key",
        ),
        (
            json!({"name": "x", "kind": "slack", "url": ok, "routing_key": "k"}),
            "routing_key",
        ),
        (
            json!({"name": "x", "kind": "pagerduty", "url": ok, "routing_key": "a\nb"}),
            "routing_key",
        ),
        (json!({"name": "", "kind": "webhook", "url": ok}), "name"),
        (
            json!({"name": "a\u{0}b", "kind": "webhook", "url": ok}),
            "name",
        ),
        (
            json!({"name": "a\r\nb", "kind": "webhook", "url": ok}),
            "name",
        ),
        (
            json!({"name": "x".repeat(101), "kind": "webhook", "url": ok}),
            "name",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": "ftp://example.com/"}),
            "url",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": "http://127.0.0.1/\r\nX: 1"}),
            "url",
        ),
        (
            json!({"name": "x", "kind": "webhook", "url": "http://u:p@127.0.0.1/"}),
            "url",
        ),
        (json!({"name": "x", "kind": "webhook", "url": long}), "url"),
    ] {
        let (status, problem) = post_channel(&sys, &key, &body).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    let (status, _) = sys
        .post_raw("/api/v1/channels", Some(&key), b"{not json".to_vec())
        .await;
    assert_eq!(status, 400);
    let (_, list) = sys.get("/api/v1/channels", &key).await;
    assert_eq!(list["items"], json!([]), "nothing was added");
    sys.stop().await;

    // Private addresses are refused unless allowed.
    let strict = System::start(&[("AWFDRS__NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "false")]).await;
    let (_, key) = strict.tenant("acme").await;
    let (status, problem) = post_channel(&strict, &key, &channel("x", "webhook", ok)).await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem.to_string().contains("not allowed"), "{problem}");
    strict.stop().await;
}

#[tokio::test]
async fn the_cli_adds_lists_and_removes_channels() {
    let sys = System::start(&[]).await;
    let (tenant, _) = sys.tenant("acme").await;
    let out = awfdrs_tests::cli(
        &sys.world,
        &[
            "channels",
            "add",
            "oncall",
            "http://127.0.0.1:9000/hook",
            "--tenant",
            "acme",
        ],
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    let id: uuid::Uuid = lines[0].parse().expect(&out);
    assert!(lines[1].starts_with("whsec_"), "{out}");
    let out = awfdrs_tests::cli(
        &sys.world,
        &[
            "channels",
            "add",
            "pager",
            "http://127.0.0.1:9000/pd",
            "--tenant",
            "acme",
            "--kind",
            "pagerduty",
            "--routing-key",
            "R0UT1NG",
            "--min-severity",
            "high",
            "--level",
            "2",
            "--escalate-after-ms",
            "60000",
            "--rate-per-minute",
            "30",
        ],
    )
    .await;
    assert!(out.lines().nth(1).unwrap().starts_with("whsec_"), "{out}");
    let pager = &sys.ctx.store.channels(tenant.id).await.unwrap()[1];
    assert_eq!(
        (pager.level, pager.escalate_after_ms, pager.rate_per_minute),
        (2, Some(60_000), Some(30))
    );
    let out = awfdrs_tests::cli(&sys.world, &["channels", "list", "--tenant", "acme"]).await;
    assert!(
        out.contains(&id.to_string()) && out.contains("oncall"),
        "{out}"
    );
    assert!(out.contains("pagerduty") && out.contains("high"), "{out}");
    assert!(!out.contains("whsec_"), "no secrets listed: {out}");
    let out = awfdrs_tests::cli(
        &sys.world,
        &["channels", "remove", &id.to_string(), "--tenant", "acme"],
    )
    .await;
    assert!(out.contains("removed"), "{out}");
    assert_eq!(sys.ctx.store.channels(tenant.id).await.unwrap().len(), 1);

    // Refused: removing what is not there, pagerduty without a key, a bad URL.
    for args in [
        vec!["channels", "remove", &id.to_string(), "--tenant", "acme"],
        vec![
            "channels",
            "add",
            "p",
            "http://127.0.0.1/",
            "--tenant",
            "acme",
            "--kind",
            "pagerduty",
        ],
        vec![
            "channels",
            "add",
            "p",
            "http://127.0.0.1/",
            "--tenant",
            "acme",
            "--rate-per-minute",
            "0",
        ],
        vec![
            "channels",
            "add",
            "p",
            "http://127.0.0.1/\nx",
            "--tenant",
            "acme",
        ],
        vec![
            "channels",
            "add",
            "p",
            "http://127.0.0.1/",
            "--tenant",
            "nobody",
        ],
    ] {
        let out = tokio::process::Command::new(awfdrs_tests::awfdrs_bin())
            .args(&args)
            .env_clear()
            .envs(sys.world.env(&[]))
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "awfdrs {args:?} succeeded");
    }
    assert_eq!(sys.ctx.store.channels(tenant.id).await.unwrap().len(), 1);
    sys.stop().await;
}
