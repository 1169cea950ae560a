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

/// A random pause before the next try after `conflicts` lost races: full
/// jitter over an exponentially growing cap (0.25 ms, doubling, at most
/// 20 ms), so writers racing for one hot key spread out instead of
/// colliding again in lockstep until one of them runs out of attempts.
fn backoff(conflicts: u32) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let cap_micros = (250_u64 << conflicts.saturating_sub(2).min(7)).min(20_000);
    // A fresh RandomState carries fresh random keys: randomness without a dependency.
    let r = RandomState::new().hash_one(std::time::Instant::now());
    Duration::from_micros(r % (cap_micros + 1))
}

/// What a compare-and-set did.
#[derive(Debug, Clone)]
pub struct CasOutcome {
    /// The value written, or the current one when nothing was written.
    pub entry: Option<Versioned>,
    /// Whether a new revision was written.
    pub written: bool,
    /// Writes lost to concurrent writers before this outcome.
    pub conflicts: u32,
}

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

    /// Deletes the bucket `<ns>_<name>` and everything in it (tests,
    /// decommissioning); deleting a bucket that does not exist succeeds.
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), BusError> {
        let bucket = self.ns().bucket(name);
        match self.js().delete_key_value(&bucket).await {
            Ok(_) => Ok(()),
            Err(_) if self.js().get_key_value(&bucket).await.is_err() => Ok(()),
            Err(e) => Err(BusError::Kv(format!("delete bucket {bucket}: {e}"))),
        }
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
    pub async fn update<F>(&self, key: &str, f: F) -> Result<Option<Versioned>, BusError>
    where
        F: FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    {
        Ok(self.cas(key, None, f).await?.entry)
    }

    /// [`Bucket::update`], starting from `seed` (a value believed current,
    /// such as one from a watched view) instead of reading first, which saves
    /// a round trip when the guess is right. A stale seed costs one conflict.
    /// `f` declining to write is only trusted on a value just read, never on
    /// the seed. Reports whether it wrote and how many conflicts it lost.
    ///
    /// `f` runs once per attempt; only its last run produced the value
    /// written, so a caller that captures a side result (a transition, a
    /// decision) in `f` keeps the last one.
    ///
    /// # Errors
    /// As [`Bucket::update`].
    pub async fn cas<F>(
        &self,
        key: &str,
        seed: Option<&Versioned>,
        mut f: F,
    ) -> Result<CasOutcome, BusError>
    where
        F: FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    {
        let mut current = seed.cloned();
        let mut fresh = seed.is_none();
        let mut conflicts = 0;
        for attempt in 0..MAX_CAS_ATTEMPTS {
            if fresh {
                current = self.get(key).await?;
            }
            let Some(next) = f(current.as_ref().map(|v| v.value.as_ref())) else {
                if fresh {
                    return Ok(CasOutcome {
                        entry: current,
                        written: false,
                        conflicts,
                    });
                }
                fresh = true;
                continue;
            };
            let next = Bytes::from(next);
            let written = match &current {
                Some(c) => self
                    .store
                    .update(key, next.clone(), c.revision)
                    .await
                    .map_err(|e| {
                        (
                            e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                            e.to_string(),
                        )
                    }),
                None => self.store.create(key, next.clone()).await.map_err(|e| {
                    (
                        e.kind() == kv::CreateErrorKind::AlreadyExists,
                        e.to_string(),
                    )
                }),
            };
            match written {
                Ok(revision) => {
                    return Ok(CasOutcome {
                        entry: Some(Versioned {
                            value: next,
                            revision,
                        }),
                        written: true,
                        conflicts,
                    });
                }
                Err((true, e)) => {
                    conflicts += 1;
                    fresh = true;
                    tracing::debug!(key, attempt, error = %e, "kv compare-and-set conflict");
                    if conflicts > 1 {
                        tokio::time::sleep(backoff(conflicts)).await;
                    }
                }
                Err((false, e)) => return Err(BusError::Kv(format!("update {key}: {e}"))),
            }
        }
        Err(BusError::Contention(MAX_CAS_ATTEMPTS))
    }

    /// The bucket's name (`<ns>_<name>`).
    pub fn name(&self) -> &str {
        &self.store.name
    }

    /// Every entry currently in the bucket (deleted keys left out).
    ///
    /// # Errors
    /// When the bucket cannot be read.
    pub async fn entries(&self) -> Result<Vec<(String, Versioned)>, BusError> {
        let keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(|e| BusError::Kv(format!("keys: {e}")))?
            .filter_map(|k| async move { k.ok() })
            .collect()
            .await;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(v) = self.get(&key).await? {
                out.push((key, v));
            }
        }
        Ok(out)
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
            .watch_all()
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
