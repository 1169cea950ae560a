//! The keys that seal secrets at rest, from the configuration to the
//! store, and the check of the processes that cannot work without them.

use std::sync::Arc;

use awfdrs_config::{Config, KEY_VARIABLES};
use awfdrs_store::{Keyring, Store};

/// The keyring the configuration gives, if it gives a current key.
///
/// # Errors
/// When a key cannot be read or decoded (loading the configuration already
/// reports that; this is for configurations built otherwise).
pub fn keyring(config: &Config) -> anyhow::Result<Option<Arc<Keyring>>> {
    let keys = config.secrets.keys().map_err(|problems| {
        let text: Vec<String> = problems
            .into_iter()
            .map(|(p, r)| format!("{p}: {r}"))
            .collect();
        anyhow::anyhow!("the keys for secrets at rest: {}", text.join("; "))
    })?;
    Ok(keys.map(|k| Arc::new(Keyring::new(&k.current, &k.old))))
}

/// `store`, with the configuration's keyring when it has one.
///
/// # Errors
/// As [`keyring`].
pub fn with_keys(store: Store, config: &Config) -> anyhow::Result<Store> {
    Ok(match keyring(config)? {
        Some(keys) => store.with_keyring(keys),
        None => store,
    })
}

/// Refuses to start `process` (which signs or verifies with secrets at
/// rest: the gateway, the scheduler, the notifier) without a current key.
///
/// # Errors
/// When no current key is configured, naming the variables that give one.
pub fn require_secrets_key(config: &Config, process: &str) -> anyhow::Result<()> {
    if keyring(config)?.is_none() {
        anyhow::bail!(
            "{process} needs the key that seals secrets at rest: set {KEY_VARIABLES} \
             (base64 of 32 random bytes; `openssl rand -base64 32` makes one)"
        );
    }
    Ok(())
}
