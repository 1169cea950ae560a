//! The remediation modes: the real coordinator and scheduler, under rules
//! written for the run (see [`rules`]: retries due 1 ms after the decision,
//! limits far above the load), measured from outside over NATS.
//!
//! * `remediation` / `remediation-max`: incidents written with their
//!   recorded decisions (each its own incident, workflow and run, so every
//!   decision takes the real path, none the duplicate one), then the
//!   decisions published as the analyzer's relay publishes them, at
//!   `--remediation-rate` or as fast as possible. Figures: decision
//!   published -> retry command received on
//!   `<ns>.commands.<tenant>.<workflow>.retry` (and the two legs, to the
//!   action's transaction and from it to the scheduler's round), actions
//!   recorded per second.
//! * `scheduler`: `--scheduled` retries written straight into `actions`,
//!   due evenly over `--due-over`, fired by `--schedulers` real schedulers.
//!   Figures: lateness (`fired_at - due_at`, and the command's arrival -
//!   `due_at`), commands per second, this process's resident memory.

pub(super) mod rules;
pub(super) mod seed;
pub(super) mod watch;

use std::time::Duration;

use awfdrs_runtime::{Context, Harness};
use awfdrs_store::{BenchActionTimes, Store};
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::load::histogram;
use super::machine::memory_kib;
use super::outcome::window;
use super::{Bench, Mode};
pub(super) use rules::SUMMARY as RULES_SUMMARY;
use watch::{Arrivals, Watcher};

/// How long a mode waits without progress before it gives up.
const STALLED: Duration = Duration::from_secs(60);

/// What a remediation mode measured.
#[derive(Debug)]
pub struct Figures {
    /// Decisions written (with their incidents), and how long that took.
    pub decisions: u64,
    pub seeding: Duration,
    /// How long publishing them took.
    pub publishing: Duration,
    /// Actions recorded, by kind, and how many retries admission paced.
    pub actions: Vec<(String, u64)>,
    pub paced: u64,
    /// From the first action's transaction to the last's.
    pub recording: Duration,
    pub recorded: u64,
    /// Incidents whose retry command arrived; commands that arrived again.
    pub commands: u64,
    pub repeated: u64,
    /// From the first command's arrival to the last's.
    pub commanding: Duration,
    /// Decision published -> retry command received, in microseconds.
    pub latency: Histogram<u64>,
    /// Decision published -> its action's transaction.
    pub to_action: Histogram<u64>,
    /// The action's transaction -> the scheduler's round that fired it.
    pub to_fired: Histogram<u64>,
    /// This process's `VmRSS` and `VmHWM` at the end, in KiB.
    pub memory_kib: Option<(u64, u64)>,
}

/// What the `scheduler` mode measured.
#[derive(Debug)]
pub struct SchedulerFigures {
    pub scheduled: u64,
    pub seeding: Duration,
    /// The first retry was due this long after the schedule committed
    /// (negative: before it).
    pub lead: chrono::Duration,
    pub fired: u64,
    /// Commands that arrived (first per incident), and again.
    pub commands: u64,
    pub repeated: u64,
    /// From the first retry fired to the last.
    pub firing: Duration,
    /// `fired_at - due_at`, in microseconds (0 when fired early).
    pub lateness: Histogram<u64>,
    /// The command's arrival - `due_at`.
    pub arrival: Histogram<u64>,
    /// Fired before they were due (a bug if any).
    pub early: u64,
    pub memory_kib: Option<(u64, u64)>,
}

/// Per second over `window`, counting the events after the first.
pub fn per_second(n: u64, window: Duration) -> f64 {
    n.saturating_sub(1) as f64 / window.as_secs_f64().max(1e-6)
}

impl Bench {
    /// The configuration of a remediation mode: the run's rules.
    fn remediation_config(&self, mode: Mode, rules: &rules::BenchRules) -> awfdrs_config::Config {
        let mut c = self.config_for(mode);
        c.rules.dir = rules.dir().to_string_lossy().into_owned();
        c
    }

    /// Runs `remediation` or `remediation-max`.
    pub(super) async fn remediation(&self, mode: Mode) -> anyhow::Result<Figures> {
        let a = &self.args;
        let rules = rules::BenchRules::write(&format!("{}-{}", self.run_id, mode.tag()))?;
        let ctx = Context::connect(self.remediation_config(mode, &rules)).await?;
        ctx.bus.declare_streams().await?;
        let slug = format!("bench-{}", mode.tag());
        let tenant = ctx
            .store
            .create_tenant(&slug, &awfdrs_domain::new_api_key())
            .await?;
        let n = a.remediation_rate.saturating_mul(a.remediation_seconds);
        let seeding = tokio::time::Instant::now();
        let decisions = seed::decided(&ctx.store, (tenant.id, &slug), n).await?;
        ctx.store.bench_vacuum().await?;
        let seeding = seeding.elapsed();

        let producer = self.producer(mode).await?;
        let watcher = Watcher::start(&producer, &slug).await?;
        let shutdown = CancellationToken::new();
        let harness = Harness::start(ctx.clone(), shutdown.clone())?;
        awfdrs_coordinator::start(&harness).await?;
        awfdrs_scheduler::start(&harness).await?;
        let workers = tokio::spawn(harness.run());
        let probe = Store::connect(self.db.url(), 1, Duration::from_secs(5)).await?;

        let rate = (mode == Mode::Remediation).then_some(a.remediation_rate);
        let result = async {
            let (sent, publishing) =
                watch::publish(&producer, &decisions, rate, a.in_flight).await?;
            let now = tokio::time::Instant::now();
            watch::wait_for(n, now, STALLED, "retry commands received", || async {
                Ok(watcher.seen())
            })
            .await?;
            let times = probe.bench_action_times(tenant.id).await?;
            anyhow::Ok((sent, publishing, times))
        }
        .await;
        let memory_kib = memory_kib();
        shutdown.cancel();
        super::stop_workers(workers).await;
        let arrivals = watcher.stop().await;
        probe.pool().close().await;
        ctx.store.pool().close().await;
        let (sent, publishing, times) = result?;

        let published: std::collections::HashMap<uuid::Uuid, DateTime<Utc>> = decisions
            .iter()
            .zip(sent)
            .map(|(d, at)| (d.incident_id, at))
            .collect();
        Ok(remediation_figures(
            n,
            (seeding, publishing),
            &published,
            &times,
            &arrivals,
            memory_kib,
        ))
    }

    /// Runs the `scheduler` mode.
    pub(super) async fn scheduler(&self) -> anyhow::Result<SchedulerFigures> {
        let a = &self.args;
        let mode = Mode::Scheduler;
        let rules = rules::BenchRules::write(&format!("{}-{}", self.run_id, mode.tag()))?;
        let config = self.remediation_config(mode, &rules);
        let ctx = Context::connect(config.clone()).await?;
        ctx.bus.declare_streams().await?;
        let slug = format!("bench-{}", mode.tag());
        let tenant = ctx
            .store
            .create_tenant(&slug, &awfdrs_domain::new_api_key())
            .await?;
        // Written due a day from now and vacuumed; once the schedulers run
        // (and listen), moved to start shortly after the move commits, which
        // wakes them: no retry is due while it is written.
        let seeding = tokio::time::Instant::now();
        let far = Utc::now() + chrono::Duration::days(1);
        seed::scheduled(&ctx.store, tenant.id, a.scheduled, far, a.due_over).await?;
        ctx.store.bench_vacuum().await?;
        let seeding = seeding.elapsed();

        let producer = self.producer(mode).await?;
        let watcher = Watcher::start(&producer, &slug).await?;
        let shutdown = CancellationToken::new();
        let mut workers = Vec::new();
        let mut health = Vec::new();
        for _ in 0..a.schedulers {
            let ctx = Context::connect(config.clone()).await?;
            health.push(ctx.health.clone());
            let harness = Harness::start(ctx, shutdown.clone())?;
            awfdrs_scheduler::start(&harness).await?;
            workers.push(tokio::spawn(harness.run()));
        }
        // A scheduler reports its loop healthy after its first round, which
        // it starts listening before.
        let since = tokio::time::Instant::now();
        watch::wait_for(
            a.schedulers as u64,
            since,
            STALLED,
            "schedulers running",
            || {
                let running = health
                    .iter()
                    .filter(|h| {
                        matches!(
                            h.snapshot().get("scheduler.loop"),
                            Some(awfdrs_telemetry::TaskState::Ok)
                        )
                    })
                    .count() as u64;
                async move { Ok(running) }
            },
        )
        .await?;
        let lead = Duration::from_secs(1) + Duration::from_micros(10 * a.scheduled);
        let start = Utc::now() + chrono::Duration::from_std(lead)?;
        ctx.store.bench_shift_due(tenant.id, start - far).await?;
        let lead = start - Utc::now();
        ctx.store.pool().close().await;

        let probe = Store::connect(self.db.url(), 1, Duration::from_secs(5)).await?;
        let last_due = tokio::time::Instant::now() + lead.to_std().unwrap_or_default() + a.due_over;
        let n = a.scheduled;
        let result = async {
            watch::wait_for(n, last_due, STALLED, "retries fired", || async {
                Ok(u64::try_from(probe.bench_fired(tenant.id).await?.1).unwrap_or(0))
            })
            .await?;
            watch::wait_for(n, last_due, STALLED, "retry commands received", || async {
                Ok(watcher.seen())
            })
            .await?;
            anyhow::Ok(probe.bench_action_times(tenant.id).await?)
        }
        .await;
        let memory_kib = memory_kib();
        shutdown.cancel();
        for w in workers {
            super::stop_workers(w).await;
        }
        let arrivals = watcher.stop().await;
        probe.pool().close().await;
        let times = result?;
        Ok(scheduler_figures(
            n,
            (seeding, lead),
            &times,
            &arrivals,
            memory_kib,
        ))
    }
}

fn micros(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    let d = (to - from).num_microseconds().unwrap_or(0);
    u64::try_from(d).unwrap_or(0).max(1)
}

fn record(h: &mut Histogram<u64>, from: DateTime<Utc>, to: DateTime<Utc>) {
    let _ = h.record(micros(from, to));
}

/// From the earliest to the latest of `times`.
fn span(times: impl Iterator<Item = DateTime<Utc>>) -> Duration {
    let (mut first, mut last) = (None::<DateTime<Utc>>, None::<DateTime<Utc>>);
    for t in times {
        first = Some(first.map_or(t, |f| f.min(t)));
        last = Some(last.map_or(t, |l| l.max(t)));
    }
    match (first, last) {
        (Some(first), Some(last)) => window(first, last),
        _ => Duration::ZERO,
    }
}

fn kinds(times: &[BenchActionTimes]) -> Vec<(String, u64)> {
    let mut by: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for t in times {
        *by.entry(format!("{} {}", t.kind, t.status)).or_default() += 1;
    }
    by.into_iter().collect()
}

fn remediation_figures(
    n: u64,
    (seeding, publishing): (Duration, Duration),
    published: &std::collections::HashMap<uuid::Uuid, DateTime<Utc>>,
    times: &[BenchActionTimes],
    arrivals: &Arrivals,
    memory_kib: Option<(u64, u64)>,
) -> Figures {
    let (mut latency, mut to_action, mut to_fired) = (histogram(), histogram(), histogram());
    for t in times {
        let Some(sent) = published.get(&t.incident_id) else {
            continue;
        };
        record(&mut to_action, *sent, t.created_at);
        if let Some(fired) = t.fired_at {
            record(&mut to_fired, t.created_at, fired);
        }
        if let Some(arrival) = arrivals.first.get(&t.incident_id) {
            record(&mut latency, *sent, arrival.received);
        }
    }
    Figures {
        decisions: n,
        seeding,
        publishing,
        actions: kinds(times),
        paced: times.iter().filter(|t| t.paced).count() as u64,
        recording: span(times.iter().map(|t| t.created_at)),
        recorded: times.len() as u64,
        commands: arrivals.first.len() as u64,
        repeated: arrivals.repeated + arrivals.unreadable,
        commanding: span(arrivals.first.values().map(|a| a.received)),
        latency,
        to_action,
        to_fired,
        memory_kib,
    }
}

fn scheduler_figures(
    n: u64,
    (seeding, lead): (Duration, chrono::Duration),
    times: &[BenchActionTimes],
    arrivals: &Arrivals,
    memory_kib: Option<(u64, u64)>,
) -> SchedulerFigures {
    let (mut lateness, mut arrival) = (histogram(), histogram());
    let mut early = 0;
    for t in times {
        let (Some(due), Some(fired)) = (t.due_at, t.fired_at) else {
            continue;
        };
        if fired < due {
            early += 1;
        }
        record(&mut lateness, due, fired);
    }
    for a in arrivals.first.values() {
        record(&mut arrival, a.due_at, a.received);
    }
    SchedulerFigures {
        scheduled: n,
        seeding,
        lead,
        fired: times.iter().filter(|t| t.fired_at.is_some()).count() as u64,
        commands: arrivals.first.len() as u64,
        repeated: arrivals.repeated + arrivals.unreadable,
        firing: span(times.iter().filter_map(|t| t.fired_at)),
        lateness,
        arrival,
        early,
        memory_kib,
    }
}
