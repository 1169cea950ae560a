//! Registrations refused: bad URLs, workflows and keys, private
//! addresses unless allowed; and the CLI.

use awfdrs_tests::System;
use serde_json::json;

use crate::support::{delete_callback, put_callback, register};

#[tokio::test]
async fn bad_urls_workflows_and_keys_are_refused() {
    let sys = System::start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let long = format!("http://127.0.0.1/{}", "a".repeat(3000));
    for url in [
        json!("http://127.0.0.1/hook\u{0}"),
        json!("http://127.0.0.1/hook\r\nX-Injected: 1"),
        json!("http://127.0.0.1/a\tb"),
        json!(long),
        json!("ftp://127.0.0.1/hook"),
        json!("http://user:pw@127.0.0.1/hook"),
        json!("/relative"),
        json!(""),
        json!(42),
    ] {
        let (status, body) = put_callback(&sys, &key, "checkout", &url).await;
        if url.is_string() {
            assert_eq!(status, 422, "{url}: {body}");
            assert_eq!(body["errors"][0]["field"], "url", "{body}");
        } else {
            assert_eq!(status, 400, "a body of the wrong shape: {body}");
        }
    }
    let (status, body) = put_callback(&sys, &key, "Not_A_Slug", &json!("http://127.0.0.1/")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "workflow_id");

    let admin = awfdrs_domain::new_api_key();
    sys.ctx.store.create_admin_key("ops", &admin).await.unwrap();
    let (status, _) = put_callback(&sys, &admin, "checkout", &json!("http://127.0.0.1/")).await;
    assert_eq!(status, 403);
    assert_eq!(delete_callback(&sys, &admin, "checkout").await, 403);
    assert_eq!(delete_callback(&sys, &key, "checkout").await, 404);
    sys.stop().await;
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let sys = System::start(&[("AWFDRS__NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "false")]).await;
    let (tenant, key) = sys.tenant("acme").await;
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ] {
        let (status, body) = put_callback(&sys, &key, "checkout", &json!(url)).await;
        assert_eq!(status, 422, "{url}: {body}");
        let reason = body["errors"][0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("not allowed"), "{url}: {body}");
    }
    assert!(
        sys.ctx
            .store
            .callback(tenant.id, "checkout")
            .await
            .unwrap()
            .is_none()
    );
    sys.stop().await;

    let allowed = System::start(&[]).await;
    let (_, key) = allowed.tenant("acme").await;
    register(&allowed, &key, "checkout", "http://127.0.0.1:9000/hook").await;
    allowed.stop().await;
}

#[tokio::test]
async fn the_cli_sets_and_removes_a_callback() {
    let sys = System::start(&[]).await;
    let (tenant, _) = sys.tenant("acme").await;
    let out = awfdrs_tests::cli(
        &sys.world,
        &[
            "callbacks",
            "set",
            "checkout",
            "http://127.0.0.1:9000/hook",
            "--tenant",
            "acme",
        ],
    )
    .await;
    let secret = out.trim();
    assert!(secret.starts_with("whsec_"), "{out}");
    let set = sys.ctx.store.callback(tenant.id, "checkout").await.unwrap();
    assert_eq!(set.unwrap().url, "http://127.0.0.1:9000/hook");
    let out = awfdrs_tests::cli(
        &sys.world,
        &["callbacks", "remove", "checkout", "--tenant", "acme"],
    )
    .await;
    assert!(out.contains("removed"), "{out}");
    assert!(
        sys.ctx
            .store
            .callback(tenant.id, "checkout")
            .await
            .unwrap()
            .is_none()
    );

    // Refused: removing what is not there, and a URL with a newline.
    for args in [
        vec!["callbacks", "remove", "checkout", "--tenant", "acme"],
        vec![
            "callbacks",
            "set",
            "checkout",
            "http://127.0.0.1/\nx",
            "--tenant",
            "acme",
        ],
        vec![
            "callbacks",
            "set",
            "checkout",
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
    assert!(
        sys.ctx
            .store
            .callback(tenant.id, "checkout")
            .await
            .unwrap()
            .is_none()
    );
    sys.stop().await;
}
