//! The small connections the operator's commands make.

use awfdrs_config::Config;
use awfdrs_store::Store;

/// A migrated store with a pool of two connections, enough for one
/// command, and the configured keys for secrets at rest.
pub async fn store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(
        &config.database.url,
        2,
        std::time::Duration::from_millis(config.database.acquire_timeout_ms),
    )
    .await?;
    store.migrate().await?;
    awfdrs_runtime::with_keys(store, config)
}
