//! The benchmark's report as data: one [`Report`] per run, printed as the
//! human table (the rest of `report`) or as one JSON document (`--json`).
//! Every figure either printout shows is here; the table reads nothing
//! else of an ingestion mode.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `awfdrs` version and build profile (`debug` or `release`).
    pub awfdrs: String,
    pub build: &'static str,
    pub machine: Machine,
    pub settings: Settings,
    /// The events written straight into PostgreSQL before the modes.
    pub preload: Option<Preload>,
    /// What the stored events take on disk: after the preload (if any) and
    /// at the end of the run.
    pub storage: Vec<Storage>,
    pub modes: Vec<ModeReport>,
    /// Whether every correctness check of every mode held.
    pub checks_passed: bool,
}

/// The machine and the servers the run used.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub kernel: Option<String>,
    pub postgresql: String,
    pub nats_server: String,
    pub nats_url: String,
    pub nats_replicas: usize,
}

/// What the run was asked to do.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The modes run, as `--modes` names them, in order.
    pub modes: Vec<String>,
    pub database: String,
    pub namespaces: String,
    pub events_per_mode: u64,
    pub body_bytes: usize,
    pub success_percent: u64,
    pub signatures: usize,
    pub workflows: usize,
    pub codes: Vec<String>,
    pub warmup: u64,
    pub preload: u64,
    pub in_flight: usize,
    pub rate: u64,
    pub http_concurrency: usize,
    pub http_batch: usize,
    pub http_batch_concurrency: usize,
    pub probe_ms: u64,
    pub detector_batch_size: usize,
    pub detector_linger_ms: u64,
    pub pool_connections: u32,
    pub max_ack_pending: i64,
}

/// The events written before the modes.
#[derive(Debug, Clone, Serialize)]
pub struct Preload {
    pub events: u64,
    pub tenants: usize,
    /// `received_at` spread evenly over this many days back from now.
    pub days: u32,
    /// Writing them (with their keys), then `ANALYZE`.
    pub seconds: f64,
    pub analyze_seconds: f64,
    pub per_second: f64,
}

/// What `events` and `ingest_keys` (with their indexes and TOAST, every
/// partition) take, per stored event.
#[derive(Debug, Clone, Serialize)]
pub struct Storage {
    /// `after preload` or `at the end`.
    pub when: &'static str,
    pub events: i64,
    pub ingest_keys: i64,
    pub events_bytes: i64,
    pub ingest_keys_bytes: i64,
    /// `(events_bytes + ingest_keys_bytes) / events`; absent with no events.
    pub bytes_per_event: Option<f64>,
}

/// Milliseconds at the usual quantiles.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Of a histogram of microseconds; none when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        let ms = |us: u64| us as f64 / 1000.0;
        (!h.is_empty()).then(|| Self {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        })
    }
}

/// This process's resident memory.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    pub rss_mib: f64,
    pub hwm_mib: f64,
}

impl Memory {
    /// From `(VmRSS, VmHWM)` in KiB.
    pub fn from_kib(kib: Option<(u64, u64)>) -> Option<Self> {
        kib.map(|(rss, hwm)| Self {
            rss_mib: rss as f64 / 1024.0,
            hwm_mib: hwm as f64 / 1024.0,
        })
    }
}

/// CPU used during a mode, by process group (`awfdrs` is this process:
/// load, gateway and workers; `other` the rest of the machine).
#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    pub cores: BTreeMap<&'static str, f64>,
    pub machine_cores: f64,
    /// CPU milliseconds per stored event, by process group.
    pub ms_per_event: BTreeMap<&'static str, f64>,
}

/// One correctness check of a mode and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was compared, e.g. `5000 of 5000`.
    pub detail: String,
}

impl Check {
    pub fn equal(name: &'static str, got: u64, want: u64) -> Self {
        Self {
            name,
            ok: got == want,
            detail: format!("{got} of {want}"),
        }
    }

    pub fn none(name: &'static str, n: u64) -> Self {
        Self {
            name,
            ok: n == 0,
            detail: n.to_string(),
        }
    }
}

/// What one mode measured.
#[derive(Debug, Clone, Serialize)]
pub struct ModeReport {
    /// As `--modes` names it.
    pub mode: String,
    pub label: String,
    /// What `count` and `per_second` count: `events`, `incidents`,
    /// `actions`, `retries`, `notifications` or `requests`.
    pub unit: &'static str,
    pub count: u64,
    pub seconds: f64,
    pub per_second: f64,
    /// `per_second` over the raw ceiling's of the same run.
    pub of_ceiling: Option<f64>,
    /// The mode's main latency (for ingestion: send -> commit).
    pub latency_ms: Option<Percentiles>,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub checks: Vec<Check>,
    /// The ingestion modes' other figures (the table's other sections).
    pub ingestion: Option<Ingestion>,
    /// The human printout of a mode other than ingestion.
    #[serde(skip)]
    pub text: String,
}

/// An ingestion mode's load side, batches and what was persisted.
#[derive(Debug, Clone, Serialize)]
pub struct Ingestion {
    pub accepted: u64,
    pub send_seconds: f64,
    /// HTTP requests as the clients saw them.
    pub requests_ms: Option<Percentiles>,
    pub cut_short: bool,
    pub refused: BTreeMap<u16, u64>,
    pub first_error: Option<String>,
    pub batches: u64,
    pub batch_size: f64,
    pub batch_ms: f64,
    /// Mean transaction start to seen commit.
    pub tx_ms: Option<f64>,
    /// Share of the mode's time spent in batches.
    pub busy: f64,
    /// Send -> the start of the batch's transaction.
    pub to_tx_ms: Option<Percentiles>,
    pub persisted: Option<Persisted>,
}

/// What a pipeline mode's events became.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Persisted {
    pub events: i64,
    pub failures: i64,
    /// Failures of signatures that never reached their `open_after` rule,
    /// so of no incident.
    pub held_back: i64,
    pub incidents: i64,
    pub incident_events: i64,
    pub unseen_commits: u64,
}
