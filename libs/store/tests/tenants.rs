//! Tenants and their keys, against a fresh database per test.

mod common;

use common::Detect as _;

use std::sync::Arc;

use awfdrs_store::{Keyring, SealError, Store, StoreError};
use sqlx::PgPool;

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_created_tenant_is_found_by_its_key_and_its_slug(pool: PgPool) {
    let store = Store::from_pool(pool);
    let t = store.create_tenant("acme", "secret-1").await.unwrap();
    assert_eq!(
        store.tenant_by_api_key("secret-1").await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(store.tenant_by_slug("acme").await.unwrap(), Some(t));
    assert_eq!(store.tenant_by_api_key("secret-2").await.unwrap(), None);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_taken_slug_is_a_conflict(pool: PgPool) {
    let store = Store::from_pool(pool);
    store.create_tenant("acme", "k1").await.unwrap();
    let err = store.create_tenant("acme", "k2").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.tenants().await.unwrap().len(), 1);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn the_api_key_is_stored_only_as_its_hash(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    store.create_tenant("acme", "plain-secret").await.unwrap();
    let stored: Vec<u8> = sqlx::query_scalar("SELECT api_key_hash FROM tenants")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert_ne!(stored, b"plain-secret".to_vec());
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_rotated_key_replaces_the_old_one_at_once(pool: PgPool) {
    let store = Store::from_pool(pool);
    let t = store.create_tenant("acme", "old").await.unwrap();
    store.rotate_api_key("acme", "new").await.unwrap();
    assert_eq!(store.tenant_by_api_key("old").await.unwrap(), None);
    assert_eq!(store.tenant_by_api_key("new").await.unwrap(), Some(t));
    let err = store.rotate_api_key("nobody", "x").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_revoked_key_matches_nothing(pool: PgPool) {
    let store = Store::from_pool(pool);
    store.create_tenant("acme", "k").await.unwrap();
    store.revoke_api_key("acme").await.unwrap();
    assert_eq!(store.tenant_by_api_key("k").await.unwrap(), None);
    assert!(store.tenant_by_slug("acme").await.unwrap().is_some());
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_webhook_secret_is_read_back_only_once_set(pool: PgPool) {
    let store = Store::from_pool(pool.clone()).with_keyring(Arc::new(Keyring::new(&[1; 32], &[])));
    let t = store.create_tenant("acme", "k").await.unwrap();
    assert_eq!(store.tenant_webhook_secret("acme").await.unwrap(), None);
    store.set_webhook_secret("acme", "whsec_1").await.unwrap();
    assert_eq!(
        store.tenant_webhook_secret("acme").await.unwrap(),
        Some((t, "whsec_1".to_owned()))
    );
    let stored: String = sqlx::query_scalar("SELECT webhook_secret FROM tenants")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        stored.starts_with("v1:") && !stored.contains("whsec_1"),
        "{stored}"
    );
    let err = store.set_webhook_secret("nobody", "s").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn without_a_key_no_secret_is_written_or_read(pool: PgPool) {
    let keyed = Store::from_pool(pool.clone()).with_keyring(Arc::new(Keyring::new(&[1; 32], &[])));
    keyed.create_tenant("acme", "k").await.unwrap();
    keyed.set_webhook_secret("acme", "whsec_1").await.unwrap();
    let bare = Store::from_pool(pool);
    for err in [
        bare.set_webhook_secret("acme", "whsec_2")
            .await
            .unwrap_err(),
        bare.tenant_webhook_secret("acme").await.unwrap_err(),
    ] {
        assert!(
            matches!(err, StoreError::Sealed(SealError::NoKey)),
            "{err:?}"
        );
    }
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn resealing_seals_plain_text_then_old_keys_and_is_idempotent(pool: PgPool) {
    let old = Store::from_pool(pool.clone()).with_keyring(Arc::new(Keyring::new(&[1; 32], &[])));
    for slug in ["a", "b", "c"] {
        old.create_tenant(slug, slug).await.unwrap();
    }
    old.set_webhook_secret("a", "whsec_a").await.unwrap();
    sqlx::query("UPDATE tenants SET webhook_secret = 'whsec_b' WHERE slug = 'b'")
        .execute(&pool)
        .await
        .unwrap();
    let plain = old.reseal_secrets(1, true).await.unwrap();
    let t = &plain.columns[2];
    assert_eq!(
        (t.column.as_str(), t.sealed_plain, t.resealed),
        ("tenants.webhook_secret", 1, 0)
    );

    let new =
        Store::from_pool(pool.clone()).with_keyring(Arc::new(Keyring::new(&[2; 32], &[[1; 32]])));
    let first = new.reseal_secrets(1, false).await.unwrap();
    assert_eq!(
        (first.columns[2].resealed, first.columns[2].current),
        (2, 0)
    );
    let again = new.reseal_secrets(1, false).await.unwrap();
    assert_eq!((again.changed(), again.columns[2].current), (0, 2));

    let only_new = Store::from_pool(pool).with_keyring(Arc::new(Keyring::new(&[2; 32], &[])));
    for (slug, want) in [("a", "whsec_a"), ("b", "whsec_b")] {
        let (_, got) = only_new.tenant_webhook_secret(slug).await.unwrap().unwrap();
        assert_eq!(got, want);
    }
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn only_a_created_admin_key_is_an_admin_key(pool: PgPool) {
    let store = Store::from_pool(pool);
    store.create_admin_key("ops", "admin-secret").await.unwrap();
    assert!(store.is_admin_key("admin-secret").await.unwrap());
    assert!(!store.is_admin_key("other").await.unwrap());
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn tenants_are_listed_by_slug(pool: PgPool) {
    let store = Store::from_pool(pool);
    store.create_tenant("zeta", "k1").await.unwrap();
    store.create_tenant("alpha", "k2").await.unwrap();
    let slugs: Vec<String> = store
        .tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.slug)
        .collect();
    assert_eq!(slugs, ["alpha", "zeta"]);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_tenants_vendors_are_those_of_its_stored_events(pool: PgPool) {
    let (store, t) = common::store_with_tenant(pool, "acme").await;
    let other = store.create_tenant("other", "k-other").await.unwrap();
    let now = chrono::Utc::now();
    let mut twilio = common::failure(t.id, "k2", "wf", "E2", now);
    twilio.vendor = Some("twilio".to_owned());
    let mut theirs = common::failure(other.id, "k3", "wf", "E3", now);
    theirs.vendor = Some("sendgrid".to_owned());
    let batch = awfdrs_store::DetectBatch {
        events: vec![common::failure(t.id, "k1", "wf", "E1", now), twilio, theirs],
    };
    store
        .detect_batch(&batch, common::SETTINGS, &common::outbox_for)
        .await
        .unwrap();
    assert_eq!(
        store.tenant_vendors(t.id).await.unwrap(),
        ["stripe", "twilio"]
    );
    assert_eq!(store.tenant_vendors(other.id).await.unwrap(), ["sendgrid"]);
}
