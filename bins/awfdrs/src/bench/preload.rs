//! Growth (`--preload N`): before the modes, N events of the bench's own
//! shape (its workflows, codes and body size, so its signatures) with
//! unique keys, spread over `received_at` in the last `--preload-days`
//! days, are written straight into `events` and `ingest_keys` through the
//! tables' ordinary columns (into the partitions of their days, made first),
//! then the database is vacuumed and analyzed; the modes then
//! run against that populated database. Also what the stored events take
//! on disk, which every run reports.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use awfdrs_domain::{Signature, normalize_code};
use awfdrs_store::{PreloadShape, Store};
use chrono::Utc;

use super::Bench;
use super::load::EventGen;
use super::report::model::{Preload, Storage};

/// The tenants the preloaded events are spread over.
const TENANTS: usize = 4;
/// Distinct events the preload repeats (with its own key each), enough to
/// cover every workflow and code and the share of successes.
const TEMPLATES: u64 = 1_000;
/// Events per statement (and transaction).
const CHUNK: u64 = 50_000;

/// The columns of the templates, as the detector stores an event.
#[derive(Debug, Default)]
struct Templates {
    event_types: Vec<&'static str>,
    workflows: Vec<String>,
    vendors: Vec<Option<String>>,
    codes: Vec<Option<String>>,
    codes_raw: Vec<Option<String>>,
    messages: Vec<Option<String>>,
    http_statuses: Vec<Option<i32>>,
    retryable: Vec<Option<bool>>,
    metadata: Vec<Option<String>>,
}

impl Templates {
    /// The bench's events 0 .. TEMPLATES, parsed and validated as the
    /// gateway and detector do.
    fn of(events: &EventGen) -> anyhow::Result<Self> {
        let now = Utc::now();
        let mut t = Self::default();
        for i in 0..TEMPLATES {
            let value: serde_json::Value = serde_json::from_str(&events.body(i, now))?;
            let valid = awfdrs_domain::parse_event(&value, now)
                .map_err(|e| anyhow::anyhow!("the bench's event {i} is not valid: {e:?}"))?;
            let e = valid.event;
            let error = e.error.filter(|_| e.event_type.is_failure());
            t.event_types.push(e.event_type.as_str());
            t.workflows.push(e.workflow_id);
            t.vendors.push(e.vendor);
            t.codes
                .push(error.as_ref().map(|e| normalize_code(&e.code)));
            t.codes_raw.push(error.as_ref().map(|e| e.code.clone()));
            t.messages
                .push(error.as_ref().and_then(|e| e.message.clone()));
            t.http_statuses
                .push(error.as_ref().and_then(|e| e.http_status));
            t.retryable.push(error.as_ref().and_then(|e| e.retryable));
            t.metadata
                .push(e.metadata.map(|m| serde_json::Value::Object(m).to_string()));
        }
        Ok(t)
    }

    /// Each template's signature in each tenant, tenant after tenant.
    fn signatures(&self, tenants: &[String]) -> Vec<Option<String>> {
        tenants
            .iter()
            .flat_map(|tenant| {
                self.workflows
                    .iter()
                    .zip(&self.codes_raw)
                    .map(move |(w, c)| {
                        c.as_ref()
                            .map(|c| Signature::compute(tenant, w, c).as_str().to_owned())
                    })
            })
            .collect()
    }
}

impl Bench {
    /// Writes `--preload` events, then analyzes the database.
    pub(super) async fn preload(&self) -> anyhow::Result<(Preload, Storage)> {
        let n = self.args.preload;
        let days = self.args.preload_days.max(1);
        let store = Store::connect(self.db.url(), 1, Duration::from_secs(5)).await?;
        let slugs: Vec<String> = (1..=TENANTS)
            .map(|i| format!("bench-preload-{i}"))
            .collect();
        let mut tenants = Vec::new();
        for slug in &slugs {
            let tenant = store
                .create_tenant(slug, &awfdrs_domain::new_api_key())
                .await?;
            tenants.push(tenant.id);
        }
        let t = Templates::of(&EventGen::new(
            "bench-preload",
            self.args.payload_bytes,
            &self.args.codes,
        ))?;
        let signatures = t.signatures(&slugs);
        let span = f64::from(days) * 86_400.0;
        let shape = PreloadShape {
            tenants: &tenants,
            event_types: &t.event_types,
            workflows: &t.workflows,
            vendors: &t.vendors,
            error_codes: &t.codes,
            error_codes_raw: &t.codes_raw,
            error_messages: &t.messages,
            http_statuses: &t.http_statuses,
            retryable: &t.retryable,
            metadata: &t.metadata,
            signatures: &signatures,
            // Received over the span, the last a minute ago.
            from: Utc::now() - chrono::Duration::seconds(span as i64 + 60),
            spacing_seconds: span / n.max(1) as f64,
        };
        // The days' partitions first, as a running system has them made
        // ahead: rows the default partition caught would be moved out by
        // the next maintenance, leaving it full of dead rows that every
        // query by occurred_at scans until it is vacuumed.
        store
            .bench_make_day_partitions(shape.from, Utc::now())
            .await?;
        let started = Instant::now();
        let mut written = 0;
        while written < n {
            let chunk = CHUNK.min(n - written);
            store
                .bench_preload_events(shape, written, chunk)
                .await
                .with_context(|| format!("preloading events {written} to {}", written + chunk))?;
            written += chunk;
            if written < n {
                eprintln!("bench: preloaded {written} of {n} events");
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let analyzing = Instant::now();
        // Vacuumed, not only analyzed: else autovacuum takes on the whole
        // preload while the modes run, and they measure it.
        store.bench_vacuum_analyze().await?;
        let analyze_seconds = analyzing.elapsed().as_secs_f64();
        let storage = storage(&store, "after preload").await?;
        store.pool().close().await;
        Ok((
            Preload {
                events: written,
                tenants: TENANTS,
                days,
                seconds,
                analyze_seconds,
                per_second: written as f64 / seconds.max(1e-6),
            },
            storage,
        ))
    }

    /// What the stored events take on disk now.
    pub(super) async fn storage(&self, when: &'static str) -> anyhow::Result<Storage> {
        let store = Store::connect(self.db.url(), 1, Duration::from_secs(5)).await?;
        let s = storage(&store, when).await;
        store.pool().close().await;
        s
    }
}

async fn storage(store: &Store, when: &'static str) -> anyhow::Result<Storage> {
    let s = store
        .bench_storage()
        .await
        .context("measuring the size of events and ingest_keys")?;
    Ok(Storage {
        when,
        events: s.events,
        ingest_keys: s.ingest_keys,
        events_bytes: s.events_bytes,
        ingest_keys_bytes: s.ingest_keys_bytes,
        bytes_per_event: (s.events > 0)
            .then(|| (s.events_bytes + s.ingest_keys_bytes) as f64 / s.events as f64),
    })
}
