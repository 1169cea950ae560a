//! What the secrets tests share: a tenant given secrets through the API and
//! the CLI, the CLI run with other keys, and the database searched.

use std::process::Output;

use awfdrs_config::Env;
use awfdrs_domain::webhook;
use awfdrs_store::{Keyring, Slot};
use awfdrs_tests::{System, World, awfdrs_bin, failure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// The secrets one tenant was given through the API and the CLI.
pub(crate) struct Given {
    pub(crate) tenant: Uuid,
    pub(crate) channel: Uuid,
    pub(crate) channel_secret: String,
    pub(crate) callback_secret: String,
    pub(crate) webhook_secret: String,
}

/// A tenant `slug` with a channel and a callback (over HTTP) and a webhook
/// secret (`awfdrs tenants webhook-secret`).
pub(crate) async fn give(sys: &System, slug: &str) -> Given {
    let (tenant, key) = sys.tenant(slug).await;
    let channel = json!({"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/hook"});
    let (status, added) = sys.post("/api/v1/channels", &key, &channel).await;
    assert_eq!(status, 201, "{added}");
    let resp = sys
        .http
        .put(format!("{}/api/v1/workflows/checkout/callback", sys.base))
        .bearer_auth(&key)
        .json(&json!({"url": "http://127.0.0.1:9/retry"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let callback: Value = resp.json().await.unwrap();
    let out = awfdrs(&sys.world, &[], &["tenants", "webhook-secret", slug]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    Given {
        tenant: tenant.id,
        channel: added["id"].as_str().unwrap().parse().unwrap(),
        channel_secret: added["secret"].as_str().unwrap().to_owned(),
        callback_secret: callback["secret"].as_str().unwrap().to_owned(),
        webhook_secret: text(&out.stdout).trim().to_owned(),
    }
}

/// `awfdrs ARGS` in `world` with `extra` variables set (an empty value
/// removes the variable).
pub(crate) async fn awfdrs(world: &World, extra: &[(&str, &str)], args: &[&str]) -> Output {
    let mut env: Env = world.env(&[]);
    for (k, v) in extra {
        if v.is_empty() {
            env.remove(*k);
        } else {
            env.insert((*k).into(), (*v).into());
        }
    }
    tokio::process::Command::new(awfdrs_bin())
        .args(args)
        .env_clear()
        .envs(env)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run awfdrs")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The tables with a row whose whole text (`row::text`) contains `needle`.
pub(crate) async fn tables_containing(pool: &PgPool, needle: &str) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "channels"), "{tables:?}");
    let mut found = Vec::new();
    for t in tables {
        let sql = format!("SELECT count(*) FROM \"{t}\" x WHERE strpos(x::text, $1) > 0");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(needle)
            .fetch_one(pool)
            .await
            .unwrap();
        if n > 0 {
            found.push(t);
        }
    }
    found
}

/// The stored (sealed) values of `g`'s three secrets.
pub(crate) async fn stored(pool: &PgPool, g: &Given) -> [String; 3] {
    let one = |sql: &'static str, id: Uuid| async move {
        sqlx::query_scalar::<_, String>(sql)
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    [
        one("SELECT secret FROM channels WHERE id = $1", g.channel).await,
        one(
            "SELECT secret FROM workflow_callbacks WHERE tenant_id = $1",
            g.tenant,
        )
        .await,
        one("SELECT webhook_secret FROM tenants WHERE id = $1", g.tenant).await,
    ]
}

/// `g`'s secrets opened from the database with `ring`.
pub(crate) async fn opened(
    pool: &PgPool,
    g: &Given,
    ring: &Keyring,
) -> Vec<Result<String, String>> {
    let slots = [
        Slot::channel(g.channel),
        Slot::callback(g.tenant, "checkout"),
        Slot::tenant(g.tenant),
    ];
    let values = stored(pool, g).await;
    slots
        .iter()
        .zip(&values)
        .map(|(slot, v)| ring.open(slot, v).map_err(|e| e.to_string()))
        .collect()
}

/// The status of an event POSTed to `base` signed with `secret` as `slug`.
pub(crate) async fn signed_ingest(base: &str, slug: &str, secret: &str, idem: &str) -> u16 {
    let body = failure(idem, "checkout", "payment_timeout").to_string();
    let now = chrono::Utc::now().timestamp();
    let id = format!("msg_{idem}");
    let signature = webhook::sign(secret, &id, now, body.as_bytes()).unwrap();
    reqwest::Client::new()
        .post(format!("{base}/api/v1/events"))
        .header("content-type", "application/json")
        .header("x-awfdrs-tenant", slug)
        .header("webhook-id", id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

pub(crate) fn key_bytes(b64: &str) -> [u8; 32] {
    STANDARD.decode(b64).unwrap().try_into().unwrap()
}
