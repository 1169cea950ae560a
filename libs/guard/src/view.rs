//! This process's view of every breaker: the latest revision seen of each
//! KV entry, fed by the watch and by this process's own writes, read
//! without locks or round trips.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use awfdrs_bus::kv::Versioned;
use awfdrs_safety::breaker::Breaker;

/// One breaker as last seen.
#[derive(Debug)]
pub(crate) struct Held {
    /// The parsed value; `None` when the entry does not parse.
    pub breaker: Option<Breaker>,
    /// The entry as stored, to seed the next compare-and-set.
    pub raw: Versioned,
}

/// The latest value of each vendor's entry. Writers replace the map whole
/// (few vendors, rare writes); readers load it without blocking.
#[derive(Debug, Default)]
pub(crate) struct View {
    map: ArcSwap<HashMap<String, Arc<Held>>>,
}

impl View {
    /// The entry of `vendor`, if seen.
    pub fn get(&self, vendor: &str) -> Option<Arc<Held>> {
        self.map.load().get(vendor).cloned()
    }

    /// Runs `f` on the entry of `vendor` without cloning anything.
    pub fn with<R>(&self, vendor: &str, f: impl FnOnce(Option<&Held>) -> R) -> R {
        let map = self.map.load();
        f(map.get(vendor).map(AsRef::as_ref))
    }

    /// Every entry.
    pub fn all(&self) -> Arc<HashMap<String, Arc<Held>>> {
        self.map.load_full()
    }

    /// Takes `raw` as the value of `vendor` unless a later revision is
    /// already held: the watch and this process's writes may arrive in
    /// either order.
    pub fn put(&self, vendor: &str, raw: Versioned) {
        let breaker = match serde_json::from_slice::<Breaker>(&raw.value) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(vendor, revision = raw.revision, error = %e, "unreadable breaker in KV");
                None
            }
        };
        let held = Arc::new(Held { breaker, raw });
        self.map.rcu(|map| {
            if map
                .get(vendor)
                .is_some_and(|h| h.raw.revision >= held.raw.revision)
            {
                return Arc::clone(map);
            }
            let mut next = HashMap::clone(map);
            next.insert(vendor.to_owned(), Arc::clone(&held));
            Arc::new(next)
        });
    }

    /// Forgets `vendor` (its entry was deleted or purged): it reads as a
    /// closed breaker again.
    pub fn remove(&self, vendor: &str) {
        self.map.rcu(|map| {
            if !map.contains_key(vendor) {
                return Arc::clone(map);
            }
            let mut next = HashMap::clone(map);
            next.remove(vendor);
            Arc::new(next)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;

    fn json(b: &Breaker, revision: u64) -> Versioned {
        Versioned {
            value: serde_json::to_vec(b).expect("serialises").into(),
            revision,
        }
    }

    #[test]
    fn an_older_revision_never_replaces_a_newer_one() {
        let view = View::default();
        let b1 = Breaker::new(Timestamp::from_unix_millis(1));
        let b2 = Breaker::new(Timestamp::from_unix_millis(2));
        view.put("stripe", json(&b2, 7));
        view.put("stripe", json(&b1, 5));
        let held = view.get("stripe").expect("held");
        assert_eq!(held.raw.revision, 7);
        assert_eq!(held.breaker.as_ref(), Some(&b2));
    }

    #[test]
    fn an_unreadable_entry_is_held_without_a_breaker() {
        let view = View::default();
        view.put(
            "stripe",
            Versioned {
                value: "not json".into(),
                revision: 1,
            },
        );
        assert!(view.get("stripe").is_some_and(|h| h.breaker.is_none()));
        view.remove("stripe");
        assert!(view.get("stripe").is_none());
    }
}
