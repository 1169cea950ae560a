//! `awfdrs bench`: how fast this machine takes events in, end to end, and
//! how close that is to what its NATS and PostgreSQL allow at all. It
//! prints figures and asserts nothing.
//!
//! Everything runs in this process against the configured `DATABASE_URL`
//! and `NATS_URL`, in a database created for the run (dropped at its end)
//! and one fresh namespace per mode (its streams and KV buckets deleted at
//! the end):
//!
//! * the raw ceiling: pipelined JetStream publishes to a bare stream, the
//!   bus's batch pull consumer, one batched insert into a bare table per
//!   batch, ack;
//! * the pipeline over NATS with the real detector, paced at `--rate` and
//!   as fast as possible;
//! * the pipeline over HTTP with the real gateway and detector, one event
//!   per request and in batches;
//! * new incidents (each of its own signature) paced at `--analysis-rate`
//!   (and on request, `--modes analysis-max`, as fast as possible) to the
//!   real detector and analyzer, over `--past-incidents` resolved ones:
//!   incidents analysed per second and the time from an incident's opening
//!   to its decision (see [`analysis`]);
//! * on request (`--modes remediation,remediation-max,scheduler`), the
//!   real coordinator and scheduler: decision published -> retry command
//!   received, actions per second, and the lateness of `--scheduled`
//!   retries due over `--due-over` (see [`remediation`]);
//! * on request (`--modes notifier`), the real notifier: `--escalations`
//!   escalations, each told to two channels on local receivers:
//!   notifications per second, escalation published -> notification
//!   received, each delivered once per `webhook-id` (see [`notifier`]);
//! * on request (`--modes loop,loop-2`), the whole loop with every worker
//!   its own process: events -> incident -> decision -> retry command or
//!   notification, each hop's latency from the tables' timestamps, each
//!   worker's CPU time and peak resident memory, and the rate with twice
//!   the processes (see [`whole`]);
//! * on request (`--modes storm`), a vendor outage across `--storm-runs`
//!   runs through the same processes: the breaker opening on its own, the
//!   retries held, none fired into it, the probes, the pace after it
//!   closed, every incident resolved (see [`whole::storm`]);
//! * on request (`--modes slow-clients`), the gateway under slowloris
//!   connections and stalled uploads, with this process's resident memory
//!   and the latency of well-behaved requests meanwhile (see [`slow`]).
//!
//! Latency is from an event's (intended) send to the commit of the
//! transaction that stored it and updated its incident (see [`probe`]).
//!
//! This module holds the run itself: the modes in order, each mode's
//! configuration and the clean-up; each kind of mode is in its own module
//! (`ceiling`, `pipeline`, `analysis`, `remediation`, `notifier`, `slow`,
//! `whole`), the load in `load`, the printout in `report`.

mod analysis;
mod args;
mod ceiling;
mod load;
mod machine;
mod notifier;
mod outcome;
mod pipeline;
mod preload;
mod probe;
mod remediation;
mod report;
mod slow;
mod whole;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use awfdrs_bus::{Bus, Namespace};
use awfdrs_config::Config;
use awfdrs_store::{BenchDatabase, Store};

pub use args::{BenchArgs, Mode};
use load::EventGen;
use outcome::Outcome;

/// Runs the benchmark and prints its figures.
///
/// # Errors
/// When PostgreSQL or NATS cannot be reached, or a mode cannot run.
pub async fn run(
    config: Config,
    args: BenchArgs,
    config_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        awfdrs_telemetry::init_logging(config.telemetry.log_format);
    }
    if args.events == 0 || args.in_flight == 0 || args.probe_ms == 0 || args.max_seconds == 0 {
        bail!("--events, --in-flight, --probe-ms and --max-seconds must be positive");
    }
    if args.codes.is_empty() || !args.codes.iter().all(|c| awfdrs_domain::is_slug(c)) {
        bail!("--codes must be one or more slugs such as vendor_5xx");
    }
    if args.http_concurrency == 0 || args.http_batch_concurrency == 0 || args.http_batch == 0 {
        bail!("--http-concurrency, --http-batch and --http-batch-concurrency must be positive");
    }
    if args.remediation_rate == 0
        || args.remediation_seconds == 0
        || args.scheduled == 0
        || args.schedulers == 0
        || args.escalations == 0
    {
        bail!(
            "--remediation-rate, --remediation-seconds, --scheduled, --schedulers and \
             --escalations must be positive"
        );
    }
    if args.loop_events == 0 || args.signatures == 0 || args.processes == 0 {
        bail!("--loop-events, --signatures and --processes must be positive");
    }
    if args.storm_runs < 40 {
        bail!("--storm-runs must be at least 40: the breaker needs 30 calls from three tenants");
    }
    let mut modes = args.modes.clone();
    modes.sort_unstable();
    modes.dedup();
    if args.rate == 0 && modes.contains(&Mode::Nats) {
        modes.retain(|m| *m != Mode::Nats);
        if !modes.contains(&Mode::NatsMax) {
            modes.push(Mode::NatsMax);
            modes.sort_unstable();
        }
    }

    let db = BenchDatabase::create(&config.database.url)
        .await
        .with_context(|| {
            format!(
                "creating a benchmark database on {}",
                awfdrs_runtime::redact(&config.database.url)
            )
        })?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let bench = Bench {
        config,
        config_file: config_file.map(|f| f.to_string_lossy().into_owned()),
        args,
        db,
        run_id,
    };
    let result = tokio::select! {
        r = bench.run_modes(&modes) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if bench.args.keep {
        eprintln!(
            "bench: kept database {} and namespaces bench{}_<mode>",
            bench.db.name(),
            bench.run_id
        );
    } else {
        bench.clean_up(&modes).await;
    }
    result
}

struct Bench {
    config: Config,
    /// The configuration file given, for the loop modes' workers.
    config_file: Option<String>,
    args: BenchArgs,
    db: BenchDatabase,
    run_id: String,
}

impl Bench {
    fn namespace(&self, mode: Mode) -> String {
        format!("bench{}_{}", self.run_id, mode.tag())
    }

    /// The configuration of one mode: its namespace, the run's database,
    /// and an ingress limit the load cannot reach (the limiter is not what
    /// is measured).
    fn config_for(&self, mode: Mode) -> Config {
        let mut c = self.config.clone();
        c.namespace = self.namespace(mode);
        c.database.url = self.db.url().to_owned();
        c.ingress.per_tenant_per_second = INGRESS_UNLIMITED;
        c.ingress.burst = INGRESS_UNLIMITED;
        c
    }

    fn label(&self, mode: Mode) -> String {
        let a = &self.args;
        match mode {
            Mode::Ceiling => "raw ceiling".into(),
            Mode::Nats => format!("nats paced {}/s", report::count(a.rate)),
            Mode::NatsMax => "nats max".into(),
            Mode::Http => format!("http x{}", a.http_concurrency),
            Mode::HttpBatch => format!("http batch {} x{}", a.http_batch, a.http_batch_concurrency),
            Mode::Analysis => format!(
                "analysis paced {}/s over {} past incidents",
                report::count(a.analysis_rate),
                report::count(a.past_incidents)
            ),
            Mode::AnalysisMax => format!(
                "analysis max over {} past incidents",
                report::count(a.past_incidents)
            ),
            Mode::Remediation => format!(
                "remediation paced {} decisions/s",
                report::count(a.remediation_rate)
            ),
            Mode::RemediationMax => "remediation max".into(),
            Mode::Scheduler => format!(
                "scheduler: {} retries due over {}, {} scheduler{}",
                report::count(a.scheduled),
                awfdrs_safety::duration::format_duration(a.due_over),
                a.schedulers,
                if a.schedulers == 1 { "" } else { "s" }
            ),
            Mode::Notifier => format!(
                "notifier: {} escalations {}, each to {} channels",
                report::count(a.escalations),
                match a.escalation_rate {
                    0 => "at once".to_owned(),
                    r => format!("at {}/s", report::count(r)),
                },
                notifier::CHANNELS.len()
            ),
            Mode::Loop | Mode::Loop2 => {
                let p = whole::processes(mode, a.processes);
                format!(
                    "loop: {} events {} over {} signatures, {p} process{} of each worker",
                    report::count(a.loop_events),
                    match a.loop_rate {
                        0 => "at once".to_owned(),
                        r => format!("at {}/s", report::count(r)),
                    },
                    report::count(a.signatures),
                    if p == 1 { "" } else { "es" }
                )
            }
            Mode::Storm => format!(
                "storm: {} runs of {} tenants fail on {} at once, {} process{} of each worker",
                report::count(a.storm_runs),
                whole::storm::TENANTS,
                whole::storm::VENDOR,
                a.processes,
                if a.processes == 1 { "" } else { "es" }
            ),
            Mode::SlowClients => format!(
                "slow clients: {} slowloris, {} stalled uploads (reconnecting after {} ms), \
                 {} good clients",
                a.slowloris, a.stalled_uploads, a.reconnect_ms, a.good_clients
            ),
            Mode::Warmup => "warm-up".into(),
        }
    }

    async fn run_modes(&self, modes: &[Mode]) -> anyhow::Result<()> {
        let store = Store::connect(self.db.url(), 2, Duration::from_secs(5)).await?;
        store
            .migrate()
            .await
            .context("migrating the benchmark database")?;
        let pg_version = store.bench_server_version().await?;
        store.pool().close().await;
        let nats_version = self.producer(Mode::Ceiling).await?.server_version();
        let pipelines = modes.iter().any(|m| m.is_ingestion());
        let report = self.report(modes, pg_version, nats_version);
        let mut out = report::Printout::new(self.args.json, pipelines, report);
        if self.args.preload > 0 {
            eprintln!("bench: preloading {} events", self.args.preload);
            let (preload, storage) = self.preload().await.context("preloading events")?;
            out.preload(preload, storage);
        }
        if pipelines && self.args.warmup > 0 {
            eprintln!("bench: warming up");
            self.pipeline(Mode::Warmup, self.args.warmup)
                .await
                .context("warm-up")?;
            let store = Store::connect(self.db.url(), 1, Duration::from_secs(5)).await?;
            store.bench_analyze().await?;
            store.pool().close().await;
        }

        for &mode in modes.iter().filter(|m| m.is_ingestion()) {
            eprintln!("bench: running {}", self.label(mode));
            let outcome = match mode {
                Mode::Ceiling => self.ceiling().await,
                _ => self.pipeline(mode, self.args.events).await,
            }
            .with_context(|| format!("mode {}", self.label(mode)))?;
            let ceiling = out.ceiling_rate();
            out.mode(report::build::ingestion(&outcome, ceiling));
        }
        out.ingestion_done();
        let mut loop_rates = Vec::new();
        for &mode in modes.iter().filter(|m| !m.is_ingestion()) {
            eprintln!("bench: running {}", self.label(mode));
            let label = self.label(mode);
            let context = || format!("mode {label}");
            let m = match mode {
                Mode::SlowClients => {
                    let f = self.slow_clients().await.with_context(context)?;
                    let text = report::slow_clients(&label, &self.config.http, &f);
                    report::build::slow_clients(mode, &label, &f, text)
                }
                Mode::Remediation | Mode::RemediationMax => {
                    let f = self.remediation(mode).await.with_context(context)?;
                    let text = report::remediation(&label, &self.config.coordinator, &f);
                    report::build::remediation(mode, &label, &f, text)
                }
                Mode::Scheduler => {
                    let f = self.scheduler().await.with_context(context)?;
                    let text = report::scheduler(&label, &self.config.scheduler, &f);
                    report::build::scheduler(mode, &label, &f, text)
                }
                Mode::Loop | Mode::Loop2 => {
                    let f = self.whole_loop(mode).await.with_context(context)?;
                    let text = report::whole_loop(&label, &f, &loop_rates);
                    loop_rates.push((f.processes, f.rate()));
                    report::build::whole_loop(mode, &label, &f, text)
                }
                Mode::Storm => {
                    let f = self.storm().await.with_context(context)?;
                    let text = report::storm(&label, &f);
                    report::build::storm(mode, &label, &f, text)
                }
                Mode::Notifier => {
                    let f = self.notifier().await.with_context(context)?;
                    let text = report::notifier(&label, &self.config.notifications, &f);
                    report::build::notifier(mode, &label, &f, text)
                }
                _ => {
                    let f = self.analysis(mode).await.with_context(context)?;
                    let text = report::analysis(&label, &self.config.analyzer, &f);
                    report::build::analysis(mode, &label, &f, text)
                }
            };
            out.mode(m);
        }
        out.finish(self.storage("at the end").await?)
    }

    /// A second connection to NATS for the load, as a producer would have.
    async fn producer(&self, mode: Mode) -> anyhow::Result<Arc<Bus>> {
        let n = &self.config.nats;
        let ns = Namespace::new(self.namespace(mode)).map_err(anyhow::Error::msg)?;
        Ok(Arc::new(
            Bus::connect(
                &n.url,
                ns,
                n.replicas,
                Duration::from_millis(n.connect_timeout_ms),
                Duration::from_millis(n.publish_timeout_ms),
            )
            .await?,
        ))
    }

    fn events(&self, mode: Mode) -> Arc<EventGen> {
        Arc::new(EventGen::new(
            &format!("bench-{}", mode.tag()),
            self.args.payload_bytes,
            &self.args.codes,
        ))
    }

    fn budget(&self) -> Duration {
        Duration::from_secs(self.args.max_seconds)
    }

    fn drain_deadline(&self) -> Duration {
        Duration::from_secs(60 + self.args.events / 500)
    }

    /// Deletes every mode's streams and KV buckets, and drops the database.
    async fn clean_up(&self, modes: &[Mode]) {
        use awfdrs_guard::names::{BREAKERS_BUCKET, RATELIMITS_BUCKET};
        for &mode in modes.iter().chain([&Mode::Warmup]) {
            let Ok(bus) = self.producer(mode).await else {
                continue;
            };
            if let Err(e) = bus.delete_streams().await {
                eprintln!("bench: could not delete the streams of {mode:?}: {e}");
            }
            for bucket in [BREAKERS_BUCKET, RATELIMITS_BUCKET] {
                if let Err(e) = bus.delete_bucket(bucket).await {
                    eprintln!("bench: could not delete the {bucket} bucket of {mode:?}: {e}");
                }
            }
        }
        if let Err(e) = self.db.drop_database().await {
            eprintln!(
                "bench: could not drop database {}: {e:#}; drop it by hand",
                self.db.name()
            );
        }
    }
}

/// Ingress limit of the benchmark's gateway: above any load it can send.
const INGRESS_UNLIMITED: u32 = 10_000_000;

/// Waits for the workers' harness to drain, saying when it failed.
async fn stop_workers(workers: tokio::task::JoinHandle<anyhow::Result<()>>) {
    match tokio::time::timeout(Duration::from_secs(30), workers).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("bench: a worker failed: {e:#}"),
        Ok(Err(e)) => eprintln!("bench: the workers panicked: {e}"),
        Err(_) => eprintln!("bench: the workers did not stop within 30 s"),
    }
}
