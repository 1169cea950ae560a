//! Where the key comes from: a process that signs will not start without
//! one, a bad one stops every process, and `scripts/run` makes one for a
//! local run.

use std::os::unix::fs::PermissionsExt as _;

use awfdrs_tests::World;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::support::{awfdrs, text};

#[tokio::test]
async fn a_process_that_signs_will_not_start_without_a_key() {
    let world = World::new().await;
    let out = awfdrs(&world, &[], &["tenants", "create", "acme"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let no_key = [("AWFDRS_SECRETS_KEY", "")];
    for args in [
        &["up"][..],
        &["worker", "gateway"],
        &["worker", "scheduler"],
        &["worker", "notifier"],
        &["tenants", "webhook-secret", "acme"],
        &["secrets", "rotate"],
    ] {
        let out = awfdrs(&world, &no_key, args).await;
        assert!(!out.status.success(), "awfdrs {args:?} ran without a key");
        let err = text(&out.stderr);
        assert!(
            err.contains("AWFDRS_SECRETS_KEY_FILE") && err.contains("AWFDRS_SECRETS_KEY"),
            "awfdrs {args:?}: {err}"
        );
    }
    // A key that is not one stops every process, naming the setting and
    // not showing the value.
    let out = awfdrs(
        &world,
        &[("AWFDRS_SECRETS_KEY", "bm90IGEga2V5")],
        &["migrate"],
    )
    .await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("secrets.key") && !err.contains("bm90IGEga2V5"),
        "{err}"
    );
    use sqlx::{ConnectOptions as _, Connection as _};
    let admin: sqlx::postgres::PgConnectOptions = awfdrs_tests::database_url().parse().unwrap();
    let mut conn = admin.database("postgres").connect().await.unwrap();
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", world.database);
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
}

/// `ensure_secrets_key` (scripts/lib.sh, what scripts/run calls) in a
/// shell with `vars`, its services directory `dir`: the key file it
/// exports, or an empty line.
async fn ensure_secrets_key(dir: &std::path::Path, vars: &[(&str, &str)]) -> String {
    let lib = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lib.sh");
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -euo pipefail; . {lib}; SERVICES_DIR={}; ensure_secrets_key; \
             echo \"${{AWFDRS_SECRETS_KEY_FILE:-}}\"",
            dir.display()
        ))
        .env_clear()
        .envs(vars.iter().copied())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("run bash");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_local_run_makes_its_key_once_and_only_when_none_is_given() {
    let dir = std::env::temp_dir().join(format!("awfdrs-key-{}", uuid::Uuid::new_v4()));
    let file = ensure_secrets_key(&dir, &[]).await;
    assert_eq!(file, dir.join("secrets.key").display().to_string());
    let key = std::fs::read_to_string(&file).unwrap();
    assert_eq!(STANDARD.decode(key.trim()).unwrap().len(), 32);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // Kept: the secrets it sealed open only with it.
    assert_eq!(ensure_secrets_key(&dir, &[]).await, file);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), key);
    // A key given is used as it is.
    let other = std::env::temp_dir().join(format!("awfdrs-key-{}", uuid::Uuid::new_v4()));
    let given = ensure_secrets_key(&other, &[("AWFDRS_SECRETS_KEY", key.trim())]).await;
    assert_eq!(given, "");
    assert!(!other.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
