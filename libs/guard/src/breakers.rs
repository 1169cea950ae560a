//! One circuit breaker per vendor, shared by every worker through the KV
//! bucket `<ns>_breakers`.
//!
//! Reads ([`Breakers::check`], [`Breakers::list`]) use this process's view,
//! kept current by a KV watch, and apply the clock on the way out. Writes
//! run one pure function of `awfdrs_safety::breaker` inside a
//! compare-and-set on the entry's revision, seeded with the view's value; a
//! lost race recomputes on the fresh value, and only the transition of the
//! write that succeeded is recorded.

use std::sync::Arc;
use std::time::Duration;

use awfdrs_bus::{Bus, kv::Bucket};
use awfdrs_rules::RulesHandle;
use awfdrs_safety::BreakerSettings;
use awfdrs_safety::breaker::{self, Breaker, BreakerState};
use awfdrs_store::Store;
use awfdrs_telemetry::{BucketLabels, Metrics};

use crate::audit::{Made, Recorder};
use crate::names::{BREAKERS_BUCKET, HISTORY, breaker_key};
pub use crate::snapshot::BreakerView;
use crate::view::View;
use crate::{Admission, GuardError, Outcomes, ProbeGrant, ProbeResult, Timestamp, Transition};

/// How this process takes part.
#[derive(Debug, Clone)]
pub struct BreakerOptions {
    /// This process's name in the audit trail: transitions the clock makes
    /// are recorded as `clock:<worker>`, merged outcomes as `feed:<worker>`.
    pub worker: String,
    /// How often the background task persists the clock's transitions
    /// (OPEN → HALF_OPEN, a lost probe's HALF_OPEN → OPEN).
    pub tick_interval: Duration,
}

impl BreakerOptions {
    /// Options for `worker` with a tick every 250 ms.
    #[must_use]
    pub fn new(worker: impl Into<String>) -> Self {
        Self {
            worker: worker.into(),
            tick_interval: Duration::from_millis(250),
        }
    }
}

/// The vendors' circuit breakers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Breakers {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub bucket: Bucket,
    pub view: View,
    pub rules: Arc<RulesHandle>,
    pub recorder: Recorder,
    pub options: BreakerOptions,
}

/// What to do when the stored value does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnCorrupt {
    /// Refuse (automatic writers must not paper over it).
    Fail,
    /// Start from a fresh breaker (operators' reset and force-open).
    Replace,
}

impl Breakers {
    /// Opens (creating if needed) the bucket and loads every breaker into the
    /// view. Call [`Breakers::spawn`] to keep the view current; without it
    /// (a one-shot CLI command) writes still compare-and-set against KV.
    ///
    /// # Errors
    /// When the bucket cannot be opened or read.
    pub async fn open(
        bus: &Bus,
        store: Store,
        rules: Arc<RulesHandle>,
        metrics: Arc<Metrics>,
        options: BreakerOptions,
    ) -> Result<Self, GuardError> {
        let bucket = bus.bucket(BREAKERS_BUCKET, HISTORY).await?;
        let view = View::default();
        for (vendor, raw) in bucket.entries().await? {
            view.put(&vendor, raw);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                bucket,
                view,
                rules,
                recorder: Recorder { store, metrics },
                options,
            }),
        })
    }

    /// What a retry to `vendor` may do at `now`, from the local view: no
    /// round trip. A vendor never seen is closed.
    #[must_use]
    pub fn check(&self, vendor: &str, now: Timestamp) -> Admission {
        self.inner.view.with(vendor, |held| match held {
            None => Admission::Allow,
            Some(h) => match &h.breaker {
                Some(b) if b.state() == BreakerState::Closed => Admission::Allow,
                Some(b) => breaker::check(b, &self.settings(vendor), now),
                // Fail closed: an unreadable breaker may be an operator's kill switch.
                None => Admission::Deny { until: None },
            },
        })
    }

    /// The breaker of `vendor` at `now`, from the local view.
    #[must_use]
    pub fn get(&self, vendor: &str, now: Timestamp) -> BreakerView {
        let settings = self.settings(vendor);
        self.inner.view.with(vendor, |held| match held {
            None => BreakerView::closed(vendor),
            Some(h) => match &h.breaker {
                Some(b) => BreakerView::of(vendor, Some(b), h.raw.revision, &settings, now),
                None => BreakerView::unreadable(vendor, h.raw.revision),
            },
        })
    }

    /// Who holds `vendor`'s probe slots (none unless it is half-open), from
    /// the local view.
    #[must_use]
    pub fn probe_holders(&self, vendor: &str) -> Vec<String> {
        self.inner.view.with(vendor, |held| {
            held.and_then(|h| h.breaker.as_ref())
                .map(|b| b.probes().iter().map(|p| p.holder.clone()).collect())
                .unwrap_or_default()
        })
    }

    /// Every vendor the rules name or KV holds a breaker for, by name, at
    /// `now`, from the local view.
    #[must_use]
    pub fn list(&self, now: Timestamp) -> Vec<BreakerView> {
        let rules = self.inner.rules.current();
        let mut vendors: Vec<String> = rules.vendors().map(|(v, _)| v.to_owned()).collect();
        vendors.extend(self.inner.view.all().keys().cloned());
        vendors.sort_unstable();
        vendors.dedup();
        vendors.iter().map(|v| self.get(v, now)).collect()
    }

    /// The breaker of `vendor` read from KV now (not from the view).
    ///
    /// # Errors
    /// When KV cannot be read or the name is not a slug.
    pub async fn fetch(&self, vendor: &str) -> Result<BreakerView, GuardError> {
        let key = breaker_key(vendor)?;
        match self.inner.bucket.get(key).await? {
            None => Ok(BreakerView::closed(vendor)),
            Some(raw) => {
                self.inner.view.put(vendor, raw);
                Ok(self.get(vendor, crate::now()))
            }
        }
    }

    /// Merges aggregated outcomes into the window (and opens the breaker if
    /// the window says so). `actor` names who merged them in the audit.
    ///
    /// # Errors
    /// When KV fails, or the stored value does not parse.
    pub async fn record(
        &self,
        vendor: &str,
        outcomes: &Outcomes,
        actor: &str,
    ) -> Result<Option<Transition>, GuardError> {
        let (t, ()) = self
            .write(vendor, actor, OnCorrupt::Fail, |b, s, now| {
                let (n, t) = breaker::record(b, s, now, outcomes);
                (n, t, ())
            })
            .await?;
        Ok(t)
    }

    /// Takes a probe slot for `holder` (for example a retry action's id) if
    /// the breaker is half-open with a free slot. Asking again with the same
    /// holder returns the same grant.
    ///
    /// # Errors
    /// When KV fails, or the stored value does not parse.
    pub async fn try_acquire_probe(
        &self,
        vendor: &str,
        holder: &str,
    ) -> Result<Option<ProbeGrant>, GuardError> {
        let actor = format!("probe:{holder}");
        let (_, grant) = self
            .write(vendor, &actor, OnCorrupt::Fail, |b, s, now| {
                let (n, g, t) = breaker::try_acquire_probe(b, s, now, holder);
                (n, t, g)
            })
            .await?;
        Ok(grant)
    }

    /// Reports how `holder`'s probe went: a failure reopens the breaker,
    /// enough successes close it. A report without a slot is ignored.
    ///
    /// # Errors
    /// When KV fails, or the stored value does not parse.
    pub async fn report_probe(
        &self,
        vendor: &str,
        holder: &str,
        result: ProbeResult,
    ) -> Result<Option<Transition>, GuardError> {
        let actor = format!("probe:{holder}");
        let (t, ()) = self
            .write(vendor, &actor, OnCorrupt::Fail, |b, s, now| {
                let (n, t) = breaker::report_probe(b, s, now, holder, result);
                (n, t, ())
            })
            .await?;
        Ok(t)
    }

    /// The operator's kill switch: opens the breaker and holds it open until
    /// [`Breakers::reset`]. Recorded as `operator:<actor>`.
    ///
    /// # Errors
    /// When KV fails or the name is not a slug.
    pub async fn force_open(
        &self,
        vendor: &str,
        actor: &str,
        reason: &str,
    ) -> Result<Option<Transition>, GuardError> {
        let actor = format!("operator:{actor}");
        let (t, ()) = self
            .write(vendor, &actor, OnCorrupt::Replace, |b, _, now| {
                let (n, t) = breaker::force_open(b, now, reason);
                (n, t, ())
            })
            .await?;
        Ok(t)
    }

    /// Operator action: closes the breaker and clears its window. Recorded
    /// as `operator:<actor>`.
    ///
    /// # Errors
    /// When KV fails or the name is not a slug.
    pub async fn reset(&self, vendor: &str, actor: &str) -> Result<Option<Transition>, GuardError> {
        let actor = format!("operator:{actor}");
        let (t, ()) = self
            .write(vendor, &actor, OnCorrupt::Replace, |b, _, now| {
                let (n, t) = breaker::reset(b, now);
                (n, t, ())
            })
            .await?;
        Ok(t)
    }

    /// Persists the transition the clock has made, if any (the background
    /// task calls it; the first writer wins, the others find nothing to do).
    ///
    /// # Errors
    /// When KV fails, or the stored value does not parse.
    pub async fn tick(&self, vendor: &str) -> Result<Option<Transition>, GuardError> {
        let actor = format!("clock:{}", self.inner.options.worker);
        let (t, ()) = self
            .write(vendor, &actor, OnCorrupt::Fail, |b, s, now| {
                let (n, t) = breaker::tick(b, s, now);
                (n, t, ())
            })
            .await?;
        Ok(t)
    }

    pub(crate) fn settings(&self, vendor: &str) -> BreakerSettings {
        self.inner.rules.current().vendor(vendor).breaker
    }

    /// Runs `op` on the stored breaker inside a compare-and-set and records
    /// the transition of the write that succeeded. `op` gets the breaker,
    /// the vendor's settings and the current time; it may run several times.
    async fn write<T>(
        &self,
        vendor: &str,
        actor: &str,
        on_corrupt: OnCorrupt,
        mut op: impl FnMut(&Breaker, &BreakerSettings, Timestamp) -> (Breaker, Option<Transition>, T),
    ) -> Result<(Option<Transition>, T), GuardError> {
        let key = breaker_key(vendor)?;
        let settings = self.settings(vendor);
        let seed = self.inner.view.get(vendor).map(|h| h.raw.clone());
        let mut last: Option<(Breaker, Option<Transition>, T, Timestamp)> = None;
        let mut corrupt = None;
        let cas = self
            .inner
            .bucket
            .cas(key, seed.as_ref(), |current| {
                corrupt = None;
                last = None;
                let now = crate::now();
                let (stored, replaced) = match current.map(serde_json::from_slice::<Breaker>) {
                    None => (Breaker::new(now), false),
                    Some(Ok(b)) => (b, false),
                    Some(Err(e)) if on_corrupt == OnCorrupt::Fail => {
                        corrupt = Some(e);
                        return None;
                    }
                    Some(Err(_)) => (Breaker::new(now), true),
                };
                let (next, transition, out) = op(&stored, &settings, now);
                let bytes = (replaced || next != stored).then(|| {
                    // Plain fields and vectors of numbers: serialising cannot fail.
                    serde_json::to_vec(&next).expect("a breaker always serialises")
                });
                last = Some((next, transition, out, now));
                bytes
            })
            .await;
        let cas = cas?;
        if cas.conflicts > 0 {
            self.inner
                .recorder
                .metrics
                .kv_cas_conflicts
                .get_or_create(&BucketLabels {
                    bucket: BREAKERS_BUCKET,
                })
                .inc_by(u64::from(cas.conflicts));
        }
        if let Some(source) = corrupt {
            return Err(GuardError::Corrupt {
                vendor: vendor.to_owned(),
                source,
            });
        }
        let Some(entry) = cas.entry else {
            // Nothing stored and nothing to write: the op ran on a fresh
            // closed breaker and left it as it was.
            let (_, _, out, _) = last.expect("compare-and-set ran the op");
            return Ok((None, out));
        };
        let revision = entry.revision;
        self.inner.view.put(vendor, entry);
        let (next, transition, out, now) = last.expect("compare-and-set ran the op");
        let transition = transition.filter(|_| cas.written);
        if let Some(t) = &transition {
            let made = Made {
                vendor,
                transition: t,
                actor,
                failure_rate: next.failure_rate(now, &settings),
                revision,
            };
            self.inner.recorder.record(&made).await;
        }
        Ok((transition, out))
    }
}
