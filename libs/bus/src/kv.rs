//! JetStream KV buckets with compare-and-set updates.
//!
//! Shared hot state (breakers, rate limits) is only ever changed by reading
//! an entry with its revision, computing the new value, and writing it back
//! conditional on that revision; a conflict means another writer won, so
//! the update is recomputed from the fresh value.

use std::time::Duration;

use async_nats::jetstream::kv::{self, Store};
use bytes::Bytes;
use futures::StreamExt;

use crate::{Bus, BusError};

/// A KV bucket of the namespace.
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Store,
}

/// How many conflicting writers an update tolerates before giving up.
pub const MAX_CAS_ATTEMPTS: u32 = 64;

/// One entry's value and revision, as last seen.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub value: Bytes,
    pub revision: u64,
}

impl Bus {
    /// Creates (or opens) the bucket `<ns>_<name>`.
    ///
    /// # Errors
    /// When the bucket cannot be created.
    pub async fn bucket(&self, name: &str, history: i64) -> Result<Bucket, BusError> {
        let bucket = self.ns().bucket(name);
        let store = match self.js().get_key_value(&bucket).await {
            Ok(s) => s,
            Err(_) => self
                .js()
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    history,
                    num_replicas: self.replicas(),
                    storage: async_nats::jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| BusError::Topology(format!("bucket {bucket}: {e}")))?,
        };
        Ok(Bucket { store })
    }
}

impl Bucket {
    /// The entry under `key`, if any.
    ///
    /// # Errors
    /// When the bucket cannot be read.
    pub async fn get(&self, key: &str) -> Result<Option<Versioned>, BusError> {
        match self.store.entry(key).await {
            Ok(Some(e)) if matches!(e.operation, kv::Operation::Put) => Ok(Some(Versioned {
                value: e.value,
                revision: e.revision,
            })),
            Ok(_) => Ok(None),
            Err(e) => Err(BusError::Kv(format!("get {key}: {e}"))),
        }
    }

    /// Applies `f` to the current value (None when absent) and writes the
    /// result conditional on the revision it read, recomputing on conflict.
    /// `f` returning None leaves the entry unchanged. Returns the value
    /// written (or the unchanged current one) and its revision.
    ///
    /// # Errors
    /// [`BusError::Contention`] after [`MAX_CAS_ATTEMPTS`] conflicts;
    /// [`BusError::Kv`] when the bucket cannot be reached.
    pub async fn update<F>(&self, key: &str, mut f: F) -> Result<Option<Versioned>, BusError>
    where
        F: FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    {
        for attempt in 0..MAX_CAS_ATTEMPTS {
            let current = self.get(key).await?;
            let Some(next) = f(current.as_ref().map(|v| v.value.as_ref())) else {
                return Ok(current);
            };
            let next = Bytes::from(next);
            let written = match &current {
                Some(c) => self
                    .store
                    .update(key, next.clone(), c.revision)
                    .await
                    .map_err(|e| e.to_string()),
                None => self
                    .store
                    .create(key, next.clone())
                    .await
                    .map_err(|e| e.to_string()),
            };
            match written {
                Ok(revision) => {
                    return Ok(Some(Versioned {
                        value: next,
                        revision,
                    }));
                }
                Err(e) => {
                    tracing::debug!(key, attempt, error = %e, "kv compare-and-set conflict");
                    if attempt > 4 {
                        tokio::time::sleep(Duration::from_micros(50 * u64::from(attempt))).await;
                    }
                }
            }
        }
        Err(BusError::Contention(MAX_CAS_ATTEMPTS))
    }

    /// Every (key, value) currently in the bucket and then every change,
    /// for a local view kept current without round trips.
    ///
    /// # Errors
    /// When the watch cannot be started.
    pub async fn watch(
        &self,
    ) -> Result<impl futures::Stream<Item = (String, Option<Versioned>)> + use<>, BusError> {
        let watch = self
            .store
            .watch_all_from_revision(0)
            .await
            .map_err(|e| BusError::Kv(format!("watch: {e}")))?;
        Ok(watch.filter_map(|entry| async move {
            let entry = entry.ok()?;
            let value = matches!(entry.operation, kv::Operation::Put).then(|| Versioned {
                value: entry.value,
                revision: entry.revision,
            });
            Some((entry.key, value))
        }))
    }
}
