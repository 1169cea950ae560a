//! The options of `awfdrs bench` and the modes it can run.

use clap::ValueEnum;

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
        default_value = "ceiling,nats,nats-max,http,http-batch,analysis"
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
    /// Resolved past incidents written for the tenant of each analysis mode
    /// before it sends, the history its similar incidents are ranked from.
    #[arg(long, default_value_t = 100_000)]
    pub past_incidents: u64,
    /// New incidents per second of the `analysis` mode.
    #[arg(long, default_value_t = 100)]
    pub analysis_rate: u64,
    /// How long the `analysis` mode sends, in seconds; `analysis-max` sends
    /// as many incidents (rate x seconds) as fast as it can.
    #[arg(long, default_value_t = 20)]
    pub analysis_seconds: u64,
    /// Decisions per second of the `remediation` mode; `remediation-max`
    /// publishes as many (rate x seconds) as fast as it can.
    #[arg(long, default_value_t = 200)]
    pub remediation_rate: u64,
    /// How long the `remediation` mode publishes decisions, in seconds.
    #[arg(long, default_value_t = 20)]
    pub remediation_seconds: u64,
    /// Retries the `scheduler` mode schedules before its scheduler starts.
    #[arg(long, default_value_t = 100_000)]
    pub scheduled: u64,
    /// The span their due times are spread evenly over (`10m`, `30s`,
    /// `500ms`); `0s` makes them all due at once, so the scheduler fires
    /// them as fast as it can.
    #[arg(long, default_value = "10m", value_parser = parse_span)]
    pub due_over: std::time::Duration,
    /// Schedulers of the `scheduler` mode sharing the retries (each with
    /// its own connections, as separate processes would have).
    #[arg(long, default_value_t = 1)]
    pub schedulers: usize,
    /// Escalations of the `notifier` mode, each of its own incident, each
    /// told to two channels on local receivers.
    #[arg(long, default_value_t = 2_000)]
    pub escalations: u64,
    /// Escalations per second of the `notifier` mode; 0 publishes them as
    /// fast as `--in-flight` allows.
    #[arg(long, default_value_t = 0)]
    pub escalation_rate: u64,
    /// Events of the `loop` modes.
    #[arg(long, default_value_t = 20_000)]
    pub loop_events: u64,
    /// Publish rate of the `loop` modes, events/s; 0 publishes as fast as
    /// `--in-flight` allows.
    #[arg(long, default_value_t = 1_000)]
    pub loop_rate: u64,
    /// Failure signatures (workflow x error code) of the `loop` modes.
    #[arg(long, default_value_t = 1_000)]
    pub signatures: u64,
    /// Processes of each worker in the `loop` and `storm` modes (`loop-2`
    /// runs twice as many).
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Workflow runs the `storm` mode's vendor outage fails (over four
    /// tenants); at least 40, so the breaker has its 30 calls from three
    /// sources.
    #[arg(long, default_value_t = 1_000)]
    pub storm_runs: u64,
    /// Events written straight into PostgreSQL (`events` and
    /// `ingest_keys`) before the modes, of the bench's workflows and codes
    /// over four tenants of their own, with unique keys, received over the
    /// last `--preload-days` days; then the database is vacuumed and analyzed, so the
    /// modes run against a grown database. 0 skips it.
    #[arg(long, default_value_t = 0)]
    pub preload: u64,
    /// The days the preloaded events' `received_at` is spread over.
    #[arg(long, default_value_t = 3)]
    pub preload_days: u32,
    /// Print the report as one JSON document on stdout instead of the
    /// table (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
    /// Keep the database and the streams afterwards, for inspection (and
    /// the loop modes' worker logs).
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
    /// New incidents at `--analysis-rate` to the detector and the analyzer,
    /// over `--past-incidents` past ones: incidents analysed per second and
    /// the time from an incident's opening to its decision.
    Analysis,
    /// As many new incidents as `analysis`, sent as fast as possible.
    AnalysisMax,
    /// Decisions published at `--remediation-rate` to the real coordinator
    /// and scheduler: decision published -> retry command received, and
    /// actions recorded per second.
    Remediation,
    /// As many decisions as `remediation`, published as fast as possible.
    RemediationMax,
    /// `--scheduled` retries due over `--due-over`, fired by the real
    /// scheduler: lateness (fired - due) and commands per second.
    Scheduler,
    /// `--escalations` escalations published to the real notifier, each
    /// told to two channels on local receivers: notifications per second,
    /// escalation published -> notification received, and each delivered
    /// once per `webhook-id`.
    Notifier,
    /// The whole loop, each worker its own process (`--processes` of
    /// each): events at `--loop-rate` over `--signatures` signatures ->
    /// incident -> decision -> retry command or notification, the latency
    /// of each hop, and each worker's CPU time and peak resident memory.
    Loop,
    /// The same with twice as many processes of each worker, and the ratio
    /// of the two rates when both run.
    #[value(name = "loop-2")]
    Loop2,
    /// A vendor outage across `--storm-runs` workflow runs through the
    /// whole loop, each worker its own process: the breaker opens, retries
    /// hold, and once the vendor is back they go out at its probes, then
    /// paced by its rate limit, until every incident resolves.
    Storm,
    /// Good requests while slowloris connections and stalled uploads press
    /// on the gateway: resident memory and latency.
    SlowClients,
    /// Events through NATS before the modes, not measured.
    #[value(skip)]
    Warmup,
}

impl Mode {
    /// Whether the mode feeds events to the detector alone, measured per
    /// event (the modes of the main table, after the warm-up).
    pub(super) fn is_ingestion(self) -> bool {
        !matches!(
            self,
            Self::SlowClients
                | Self::Analysis
                | Self::AnalysisMax
                | Self::Remediation
                | Self::RemediationMax
                | Self::Scheduler
                | Self::Notifier
                | Self::Loop
                | Self::Loop2
                | Self::Storm
                | Self::Warmup
        )
    }

    pub(super) fn tag(self) -> &'static str {
        match self {
            Self::Ceiling => "ceiling",
            Self::Nats => "nats",
            Self::NatsMax => "natsmax",
            Self::Http => "http",
            Self::HttpBatch => "httpbatch",
            Self::Analysis => "analysis",
            Self::AnalysisMax => "analysismax",
            Self::Remediation => "remediation",
            Self::RemediationMax => "remediationmax",
            Self::Scheduler => "scheduler",
            Self::Notifier => "notifier",
            Self::Loop => "loop",
            Self::Loop2 => "loop2",
            Self::Storm => "storm",
            Self::SlowClients => "slowclients",
            Self::Warmup => "warmup",
        }
    }
}

/// A `--due-over` span: a duration such as `10m` or `1m30s`.
fn parse_span(s: &str) -> Result<std::time::Duration, String> {
    awfdrs_safety::duration::parse_duration(s).map_err(|e| e.to_string())
}
