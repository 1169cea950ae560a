//! The operator's CLI, run as the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use awfdrs_tests::{World, awfdrs_bin, cleanup};

async fn awfdrs(world: &World, args: &[&str]) -> Output {
    tokio::process::Command::new(awfdrs_bin())
        .args(args)
        .env_clear()
        .envs(world.env(&[]))
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("run awfdrs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn tenants_create_prints_the_key_alone_and_stores_only_its_hash() {
    let world = World::new().await;
    let out = awfdrs(&world, &["tenants", "create", "acme"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let key = stdout.trim_end();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(key.starts_with("awf_") && key.len() == 68, "{key:?}");

    let ctx = world.context(&[]).await;
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT api_key_hash FROM tenants WHERE slug = 'acme'")
            .fetch_one(ctx.store.pool())
            .await
            .unwrap();
    assert_eq!(stored.len(), 32);
    assert!(
        !stored
            .windows(8)
            .any(|w| key.as_bytes().windows(8).any(|k| k == w))
    );
    assert_eq!(
        ctx.store
            .tenant_by_api_key(key)
            .await
            .unwrap()
            .unwrap()
            .slug,
        "acme"
    );

    let again = awfdrs(&world, &["tenants", "create", "acme"]).await;
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already exists"));
    let bad = awfdrs(&world, &["tenants", "create", "Not A Slug"]).await;
    assert!(!bad.status.success());
    cleanup(&ctx, &world).await;
}

#[tokio::test]
async fn rules_check_reports_every_problem_and_exits_non_zero() {
    let world = World::new().await;
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/rules");
    let out = awfdrs(&world, &["rules", "check", good]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let dir = std::env::temp_dir().join(format!("awfdrs-rules-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in [
        "error_codes.yaml",
        "retry_policies.yaml",
        "vendor_config.yaml",
    ] {
        std::fs::copy(format!("{good}/{f}"), dir.join(f)).unwrap();
    }
    let codes = std::fs::read_to_string(dir.join("error_codes.yaml")).unwrap();
    let codes = codes.replacen(
        "retry_policy: payment_timeout",
        "retry_policy: no_such_policy\n    colour: blue",
        1,
    );
    std::fs::write(dir.join("error_codes.yaml"), codes).unwrap();
    let out = awfdrs(&world, &["rules", "check", dir.to_str().unwrap()]).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("error_codes.yaml"), "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}

#[tokio::test]
async fn breakers_open_is_a_kill_switch_until_reset() {
    let world = World::new().await;
    let out = awfdrs(
        &world,
        &["breakers", "open", "stripe", "--reason", "incident 42"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = awfdrs(&world, &["breakers", "list", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stripe = items
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["vendor"] == "stripe")
        .cloned()
        .unwrap();
    assert_eq!(stripe["state"], "OPEN", "{stripe}");
    assert_eq!(stripe["forced_reason"], "incident 42");
    let out = awfdrs(&world, &["breakers", "reset", "stripe"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = awfdrs(&world, &["breakers", "list", "--json"]).await;
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        items
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["vendor"] == "stripe" && b["state"] == "CLOSED")
    );
    let ctx = world.context(&[]).await;
    cleanup(&ctx, &world).await;
}
