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
//! * on request (`--modes slow-clients`), the gateway under slowloris
//!   connections and stalled uploads, with this process's resident memory
//!   and the latency of well-behaved requests meanwhile (see [`slow`]).
//!
//! Latency is from an event's (intended) send to the commit of the
//! transaction that stored it and updated its incident (see [`probe`]).

mod ceiling;
mod load;
mod machine;
mod probe;
mod report;
mod slow;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use awfdrs_bus::{Bus, ConsumerSpec, Namespace, Stage};
use awfdrs_config::Config;
use awfdrs_runtime::{Context, Harness};
use awfdrs_store::{BenchDatabase, BenchTally, Store};
use chrono::{DateTime, Utc};
use clap::ValueEnum;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use load::{EventGen, Post, Sent};
use machine::{CpuSnapshot, CpuUse};
use probe::{Latencies, Probe};

/// Options of `awfdrs bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Events per mode.
    #[arg(long, default_value_t = 50_000)]
    pub events: u64,
    /// Publish rate of the paced NATS mode, events/s; 0 runs it unpaced
    /// (as fast as the publishes in flight allow), like `nats-max`.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// JetStream publishes awaiting their ack at once.
    #[arg(long, default_value_t = 1_000)]
    pub in_flight: usize,
    /// Concurrent keep-alive HTTP clients posting single events.
    #[arg(long, default_value_t = 32)]
    pub http_concurrency: usize,
    /// Events per request of the `http-batch` mode.
    #[arg(long, default_value_t = 100)]
    pub http_batch: usize,
    /// Concurrent HTTP clients of the `http-batch` mode.
    #[arg(long, default_value_t = 8)]
    pub http_batch_concurrency: usize,
    /// Events sent through NATS and the detector before the modes, after
    /// which the database is analyzed, so every mode plans its queries on a
    /// populated database with statistics, as a running system does; 0
    /// skips it.
    #[arg(long, default_value_t = 5_000)]
    pub warmup: u64,
    /// No mode sends for longer than this many seconds; one cut short
    /// reports on what it sent.
    #[arg(long, default_value_t = 60)]
    pub max_seconds: u64,
    /// Size of each event's JSON body.
    #[arg(long, default_value_t = 512)]
    pub payload_bytes: usize,
    /// Error codes of the failures, comma-separated: each workflow fails
    /// with each, so there are 10 workflows × this many signatures. The
    /// default mixes codes whose rules open an incident at once with codes
    /// whose rules hold it back until N failures in a window (`open_after`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "payment_timeout,vendor_5xx,rate_limited,dns_failure,card_declined"
    )]
    pub codes: Vec<String>,
    /// How often the commit probe looks for newly committed events, in ms
    /// (the latency figures are at most this much late).
    #[arg(long, default_value_t = 2)]
    pub probe_ms: u64,
    /// The modes to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ceiling,nats,nats-max,http,http-batch"
    )]
    pub modes: Vec<Mode>,
    /// Slowloris connections of the `slow-clients` mode.
    #[arg(long, default_value_t = 200)]
    pub slowloris: usize,
    /// Stalled 8 MiB uploads of the `slow-clients` mode.
    #[arg(long, default_value_t = 100)]
    pub stalled_uploads: usize,
    /// Well-behaved clients of the `slow-clients` mode, each posting one
    /// event at a time.
    #[arg(long, default_value_t = 4)]
    pub good_clients: usize,
    /// How long a hostile client of the `slow-clients` mode waits before it
    /// reconnects once the gateway has dropped or refused it; 0 reconnects
    /// at once (a connection flood more than a stall).
    #[arg(long, default_value_t = 1000)]
    pub reconnect_ms: u64,
    /// How long the `slow-clients` mode measures, in seconds.
    #[arg(long, default_value_t = 20)]
    pub slow_seconds: u64,
    /// Keep the database and the streams afterwards, for inspection.
    #[arg(long)]
    pub keep: bool,
}

/// A way of feeding events in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Mode {
    /// Bare stream, bare consumer, bare table: the machine's raw ceiling.
    Ceiling,
    /// NATS publishes at `--rate` to the detector.
    Nats,
    /// NATS publishes as fast as possible to the detector.
    NatsMax,
    /// One event per HTTP request to the gateway.
    Http,
    /// `--http-batch` events per HTTP request to the gateway.
    HttpBatch,
    /// Good requests while slowloris connections and stalled uploads press
    /// on the gateway: resident memory and latency.
    SlowClients,
    /// Events through NATS before the modes, not measured.
    #[value(skip)]
    Warmup,
}

impl Mode {
    fn tag(self) -> &'static str {
        match self {
            Self::Ceiling => "ceiling",
            Self::Nats => "nats",
            Self::NatsMax => "natsmax",
            Self::Http => "http",
            Self::HttpBatch => "httpbatch",
            Self::SlowClients => "slowclients",
            Self::Warmup => "warmup",
        }
    }
}

/// What one mode measured.
#[derive(Debug)]
pub struct Outcome {
    pub mode: Mode,
    pub label: String,
    pub sent: Sent,
    /// Events (or bare rows) in the database at the end.
    pub stored: u64,
    pub tally: Option<BenchTally>,
    /// From the first (intended) send to the last commit.
    pub window: Duration,
    pub latencies: Option<Latencies>,
    pub consumer: BatchStats,
    pub cpu: CpuUse,
}

impl Outcome {
    /// Committed events per second over the window.
    pub fn rate(&self) -> f64 {
        self.stored as f64 / self.window.as_secs_f64().max(1e-6)
    }
}

/// The consumer's batches, from its metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchStats {
    pub batches: f64,
    pub messages: f64,
    pub seconds: f64,
}

impl BatchStats {
    fn from_metrics(text: &str) -> Self {
        let sum = |name: &str| -> f64 {
            text.lines()
                .filter(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Self {
            batches: sum("awfdrs_batch_seconds_count"),
            messages: sum("awfdrs_batch_size_sum"),
            seconds: sum("awfdrs_batch_seconds_sum"),
        }
    }
}

/// Runs the benchmark and prints its figures.
///
/// # Errors
/// When PostgreSQL or NATS cannot be reached, or a mode cannot run.
pub async fn run(config: Config, args: BenchArgs) -> anyhow::Result<()> {
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
        let pipelines = modes.iter().any(|m| *m != Mode::SlowClients);
        if pipelines {
            report::header(self, modes, &pg_version, &nats_version);
        } else {
            println!("awfdrs bench: PostgreSQL {pg_version}; nats-server {nats_version}");
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

        let mut outcomes = Vec::new();
        for &mode in modes {
            eprintln!("bench: running {}", self.label(mode));
            if mode == Mode::SlowClients {
                self.slow_clients().await.context("mode slow-clients")?;
                continue;
            }
            let outcome = match mode {
                Mode::Ceiling => self.ceiling().await,
                _ => self.pipeline(mode, self.args.events).await,
            }
            .with_context(|| format!("mode {}", self.label(mode)))?;
            report::row(&outcome, outcomes.first());
            outcomes.push(outcome);
        }
        if !outcomes.is_empty() {
            report::footer(self, &outcomes);
        }
        Ok(())
    }

    /// The consumer settings of the detector, for the ceiling's consumer.
    fn consumer_spec(&self, ctx: &Context) -> ConsumerSpec {
        let c = &self.config;
        ConsumerSpec {
            stage: Stage::Detector,
            settings: ctx.consumer_settings(),
            batch_size: c.detector.batch_size,
            linger: Duration::from_millis(c.detector.linger_ms),
            nak_base: Duration::from_millis(c.consumer.nak_base_ms),
            nak_max: Duration::from_millis(c.consumer.nak_max_ms),
        }
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

    async fn ceiling(&self) -> anyhow::Result<Outcome> {
        let mode = Mode::Ceiling;
        let ctx = Context::connect(self.config_for(mode)).await?;
        ctx.bus.declare_streams().await?;
        ctx.bus
            .declare_consumer(Stage::Detector, &ctx.consumer_settings())
            .await?;
        ctx.store.bench_create_bare_table().await?;
        let (committed_tx, mut committed) = watch::channel(0u64);
        let handler = Arc::new(ceiling::BareHandler {
            store: ctx.store.clone(),
            committed: committed_tx,
        });
        let shutdown = CancellationToken::new();
        let consumer = tokio::spawn(awfdrs_bus::consumer::run(
            ctx.bus.clone(),
            self.consumer_spec(&ctx),
            handler,
            ctx.dead_letter_sink(),
            ctx.metrics.clone(),
            ctx.health.task("bench.ceiling"),
            shutdown.clone(),
        ));
        let producer = self.producer(mode).await?;

        let cpu = CpuSnapshot::take();
        let sent = load::publish(
            producer,
            self.events(mode),
            "bench-ceiling",
            (self.args.events, self.budget()),
            None,
            self.args.in_flight,
        )
        .await;
        let all = sent.accepted;
        let done = tokio::time::timeout(self.drain_deadline(), committed.wait_for(|n| *n >= all));
        if !matches!(done.await, Ok(Ok(_))) {
            bail!(
                "the bare consumer committed {} of {all} messages in time",
                *committed.borrow()
            );
        }
        let end = Utc::now();
        let cpu = CpuSnapshot::take().since(&cpu);

        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), consumer).await;
        let stored = u64::try_from(ctx.store.bench_bare_rows().await?).unwrap_or(0);
        ctx.store.bench_drop_bare_table().await?;
        Ok(Outcome {
            mode,
            label: self.label(mode),
            window: window(sent.started, end),
            sent,
            stored,
            tally: None,
            latencies: None,
            consumer: BatchStats::from_metrics(&ctx.metrics.render()),
            cpu,
        })
    }

    async fn pipeline(&self, mode: Mode, n: u64) -> anyhow::Result<Outcome> {
        let ctx = Context::connect(self.config_for(mode)).await?;
        ctx.bus.declare_streams().await?;
        let slug = format!("bench-{}", mode.tag());
        let api_key = awfdrs_domain::new_api_key();
        let tenant = ctx.store.create_tenant(&slug, &api_key).await?;

        let shutdown = CancellationToken::new();
        let harness = Harness::start(ctx.clone(), shutdown.clone())?;
        awfdrs_detector::start(&harness).await?;
        let mut base = String::new();
        if matches!(mode, Mode::Http | Mode::HttpBatch) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            base = format!("http://{}", awfdrs_gateway::start_on(&harness, listener)?);
        }
        let workers = tokio::spawn(harness.run());
        // Its own connection, so the probe never waits for the detector's pool.
        let probe_store = Store::connect(self.db.url(), 1, Duration::from_secs(5)).await?;
        let probe = Probe::start(
            probe_store.clone(),
            tenant.id,
            Duration::from_millis(self.args.probe_ms),
        );

        let a = &self.args;
        let events = self.events(mode);
        let n = (n, self.budget());
        let cpu = CpuSnapshot::take();
        let sent = match mode {
            Mode::Nats | Mode::NatsMax | Mode::Warmup => {
                let rate = (mode == Mode::Nats).then_some(a.rate);
                let producer = self.producer(mode).await?;
                load::publish(producer, events, &slug, n, rate, a.in_flight).await
            }
            Mode::Http => load::post(&base, &api_key, events, n, a.http_concurrency, Post::Single)
                .await
                .context("posting events")?,
            Mode::HttpBatch => {
                let how = Post::Batch(a.http_batch);
                load::post(&base, &api_key, events, n, a.http_batch_concurrency, how)
                    .await
                    .context("posting batches")?
            }
            Mode::Ceiling | Mode::SlowClients => bail!("{mode:?} is not a pipeline mode"),
        };
        wait_drained(&ctx.bus, sent.accepted, self.drain_deadline()).await?;
        let cpu = CpuSnapshot::take().since(&cpu);

        let seen = probe.finish(&probe_store, tenant.id).await;
        let times = probe_store.bench_event_times(tenant.id).await?;
        let latencies = probe::latencies(&times, &seen);
        let tally = probe_store.bench_tally(tenant.id).await?;

        shutdown.cancel();
        stop_workers(workers).await;
        let consumer = BatchStats::from_metrics(&ctx.metrics.render());
        probe_store.pool().close().await;
        ctx.store.pool().close().await;
        let end = latencies.last_commit.unwrap_or_else(Utc::now);
        Ok(Outcome {
            mode,
            label: self.label(mode),
            window: window(sent.started, end),
            sent,
            stored: u64::try_from(tally.events).unwrap_or(0),
            tally: Some(tally),
            latencies: Some(latencies),
            consumer,
            cpu,
        })
    }

    /// The gateway and a detector in this process under hostile clients.
    async fn slow_clients(&self) -> anyhow::Result<()> {
        let mode = Mode::SlowClients;
        let ctx = Context::connect(self.config_for(mode)).await?;
        ctx.bus.declare_streams().await?;
        let api_key = awfdrs_domain::new_api_key();
        ctx.store
            .create_tenant("bench-slowclients", &api_key)
            .await?;
        let shutdown = CancellationToken::new();
        let harness = Harness::start(ctx.clone(), shutdown.clone())?;
        awfdrs_detector::start(&harness).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = awfdrs_gateway::start_on(&harness, listener)?;
        let workers = tokio::spawn(harness.run());
        let a = &self.args;
        let shape = slow::Shape {
            slowloris: a.slowloris,
            uploads: a.stalled_uploads,
            good_clients: a.good_clients.max(1),
            duration: Duration::from_secs(a.slow_seconds.max(1)),
            reconnect: Duration::from_millis(a.reconnect_ms),
        };
        let figures = slow::run(addr, &api_key, shape).await;
        shutdown.cancel();
        stop_workers(workers).await;
        ctx.store.pool().close().await;
        report::slow_clients(&self.label(mode), &self.config.http, &figures?);
        Ok(())
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

fn window(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// Waits until the events stream holds `expected` messages and the detector
/// has acknowledged all of them, which it does only after their commit.
async fn wait_drained(bus: &Bus, expected: u64, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let stored = bus.events_stored().await.unwrap_or(0);
        let backlog = bus.consumer_backlog(Stage::Detector).await.ok();
        if stored >= expected && backlog == Some(0) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the detector did not drain in {within:?}: {stored} of {expected} events stored, \
                 {backlog:?} not acknowledged"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the workers' harness to drain, saying when it failed.
async fn stop_workers(workers: tokio::task::JoinHandle<anyhow::Result<()>>) {
    match tokio::time::timeout(Duration::from_secs(30), workers).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("bench: a worker failed: {e:#}"),
        Ok(Err(e)) => eprintln!("bench: the workers panicked: {e}"),
        Err(_) => eprintln!("bench: the workers did not stop within 30 s"),
    }
}
