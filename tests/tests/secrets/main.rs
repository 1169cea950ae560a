//! Secrets at rest: channel, callback and webhook signing secrets are
//! sealed in PostgreSQL (no row holds one), open for the processes that
//! have the key, are sealed again by `awfdrs secrets rotate` so an old key
//! can go, and are refused when altered or moved; the processes that sign
//! will not start without a key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod keys;
mod support;

use awfdrs_domain::webhook;
use awfdrs_store::{Keyring, key_id};
use awfdrs_tests::{Served, System, new_secrets_key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::support::{
    awfdrs, give, key_bytes, opened, signed_ingest, stored, tables_containing, text,
};

#[tokio::test]
async fn secrets_are_not_readable_in_the_database() {
    let sys = System::start(&[]).await;
    let g = give(&sys, "acme").await;
    let pool = sys.ctx.store.pool();
    for secret in [&g.channel_secret, &g.callback_secret, &g.webhook_secret] {
        assert!(secret.starts_with("whsec_"), "{secret}");
        let bare = secret.trim_start_matches("whsec_");
        assert_eq!(tables_containing(pool, secret).await, Vec::<String>::new());
        assert_eq!(tables_containing(pool, bare).await, Vec::<String>::new());
    }
    let kid = key_id(&key_bytes(&sys.world.secrets_key));
    for value in stored(pool, &g).await {
        assert!(value.starts_with(&format!("v1:{kid}:")), "{value}");
    }
    // The gateway opens the tenant's secret to check a signature.
    assert_eq!(
        signed_ingest(&sys.base, "acme", &g.webhook_secret, "signed-1").await,
        202
    );
    sys.stop().await;
}

#[tokio::test]
async fn rotation_reseals_every_secret_and_the_old_key_can_then_go() {
    let sys = System::start(&[]).await;
    let g = give(&sys, "acme").await;
    let pool = sys.ctx.store.pool().clone();
    // A secret stored in plain text before sealing existed: `awfdrs
    // migrate` seals it, and it reads the same.
    let (legacy, _) = sys.tenant("legacy").await;
    let plain = webhook::new_secret();
    sqlx::query("UPDATE tenants SET webhook_secret = $2 WHERE id = $1")
        .bind(legacy.id)
        .bind(&plain)
        .execute(&pool)
        .await
        .unwrap();
    let out = awfdrs(&sys.world, &[], &["migrate"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(tables_containing(&pool, &plain).await.is_empty());

    let old = sys.world.secrets_key.clone();
    let new = new_secrets_key();
    let rotate = |extra: Vec<(&'static str, String)>| {
        let world = &sys.world;
        async move {
            let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            awfdrs(
                world,
                &extra,
                &["secrets", "rotate", "--batch", "1", "--json"],
            )
            .await
        }
    };
    let with_both = vec![
        ("AWFDRS_SECRETS_KEY", new.clone()),
        ("AWFDRS_SECRETS_OLD_KEYS", old.clone()),
    ];
    let out = rotate(with_both.clone()).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["key_id"], key_id(&key_bytes(&new)));
    let counts: Vec<(String, u64, u64)> = report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let n = |f: &str| c[f].as_u64().unwrap();
            (
                c["column"].as_str().unwrap().to_owned(),
                n("resealed"),
                n("current"),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("channels.secret".to_owned(), 1, 0),
            ("workflow_callbacks.secret".to_owned(), 1, 0),
            ("tenants.webhook_secret".to_owned(), 2, 0),
        ]
    );
    // Again: nothing left to do.
    let out = rotate(with_both).await;
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    for c in again["columns"].as_array().unwrap() {
        assert_eq!(
            c["resealed"].as_u64().unwrap() + c["sealed_plain"].as_u64().unwrap(),
            0
        );
        assert!(c["current"].as_u64().unwrap() >= 1, "{c}");
    }

    // Only the new key now: everything opens, and nothing opens with the
    // old key alone.
    let new_only = Keyring::new(&key_bytes(&new), &[]);
    let want = vec![
        Ok(g.channel_secret.clone()),
        Ok(g.callback_secret.clone()),
        Ok(g.webhook_secret.clone()),
    ];
    assert_eq!(opened(&pool, &g, &new_only).await, want);
    let old_only = Keyring::new(&key_bytes(&old), &[]);
    assert!(
        opened(&pool, &g, &old_only)
            .await
            .iter()
            .all(Result::is_err)
    );
    let gateway = Served::start_args(
        &sys.world,
        &[("AWFDRS_SECRETS_KEY", &new)],
        &["worker", "gateway"],
    )
    .await;
    assert_eq!(
        signed_ingest(&gateway.base, "acme", &g.webhook_secret, "after-1").await,
        202
    );
    assert_eq!(
        signed_ingest(&gateway.base, "legacy", &plain, "after-2").await,
        202
    );
    gateway.stop().await;
    sys.stop().await;
}

#[tokio::test]
async fn an_altered_or_moved_secret_is_refused() {
    let sys = System::start(&[]).await;
    let a = give(&sys, "acme").await;
    let b = give(&sys, "globex").await;
    let pool = sys.ctx.store.pool().clone();
    let [_, _, b_sealed] = stored(&pool, &b).await;
    // globex's sealed secret copied onto acme's row; globex's own altered.
    sqlx::query("UPDATE tenants SET webhook_secret = $2 WHERE id = $1")
        .bind(a.tenant)
        .bind(&b_sealed)
        .execute(&pool)
        .await
        .unwrap();
    let (head, data) = b_sealed.rsplit_once(':').unwrap();
    let mut bytes = STANDARD.decode(data).unwrap();
    bytes[30] ^= 0x40;
    let altered = format!("{head}:{}", STANDARD.encode(bytes));
    sqlx::query("UPDATE tenants SET webhook_secret = $2 WHERE id = $1")
        .bind(b.tenant)
        .bind(&altered)
        .execute(&pool)
        .await
        .unwrap();
    // Neither checks a signature: 401, as for a wrong one, never a 5xx.
    for (slug, secret) in [
        ("acme", &a.webhook_secret),
        ("acme", &b.webhook_secret),
        ("globex", &b.webhook_secret),
    ] {
        assert_eq!(signed_ingest(&sys.base, slug, secret, slug).await, 401);
    }
    // A rotation leaves them as they are and says which they are.
    let out = awfdrs(&sys.world, &[], &["secrets", "rotate"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    for row in [a.tenant, b.tenant] {
        assert!(
            err.contains(&format!("tenants.webhook_secret {row}")),
            "{err}"
        );
    }
    assert!(err.contains("altered or moved from another row"), "{err}");
    let [_, _, now_b] = stored(&pool, &b).await;
    assert_eq!(now_b, altered);
    sys.stop().await;
}

#[tokio::test]
async fn a_value_sealed_with_a_key_not_configured_names_the_key() {
    let sys = System::start(&[]).await;
    let g = give(&sys, "acme").await;
    let other = new_secrets_key();
    let out = awfdrs(
        &sys.world,
        &[("AWFDRS_SECRETS_KEY", &other)],
        &["events", "send", "--tenant", "acme"],
    )
    .await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let kid = key_id(&key_bytes(&sys.world.secrets_key));
    assert!(
        err.contains(&format!("sealed with key {kid}, which is not configured")),
        "{err}"
    );
    assert!(err.contains("AWFDRS_SECRETS_OLD_KEYS"), "{err}");
    // The gateway with another key: a 401, not a 5xx.
    let gateway = Served::start_args(
        &sys.world,
        &[("AWFDRS_SECRETS_KEY", &other)],
        &["worker", "gateway"],
    )
    .await;
    assert_eq!(
        signed_ingest(&gateway.base, "acme", &g.webhook_secret, "k-1").await,
        401
    );
    gateway.stop().await;
    sys.stop().await;
}
