//! The storm mode (`storm`): a vendor outage across `--storm-runs` workflow
//! runs of four tenants, through the whole loop with each worker its own
//! process. Every run fails on one vendor at once; the failures open its
//! breaker on their own; the mode plays the workflow engine (a retry
//! command makes its run fail again while the vendor is down, and succeed
//! once it is back, each outcome published on NATS with a key of its own).
//! Once every incident has an action the vendor comes back; once every
//! incident is resolved the mode reads from the tables how long the breaker
//! took to open, how many retries were held, whether any fired into an open
//! breaker, how many went out per half-open span, and how the released
//! retries were paced against the vendor's rate limit.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use awfdrs_bus::{Bus, Outgoing};
use awfdrs_domain::RetryCommandV1;
use awfdrs_runtime::Context;
use awfdrs_store::{BenchStormProgress, Store};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use uuid::Uuid;

use super::super::load::{Sent, histogram};
use super::super::remediation::rules::BenchRules;
use super::super::{Bench, Mode};
use super::workers::{WORKERS, Worker, WorkerUse};
use super::{SAMPLE, STALLED, sample};

/// The tenants the runs are spread over (the breaker needs failures from
/// three sources).
pub const TENANTS: usize = 4;
/// The vendor that goes down, and its error code.
pub const VENDOR: &str = "stormpay";
const CODE: &str = "storm_timeout";
/// The vendor's retry rate limit and burst, and its breaker's half-open
/// probes and successes to close.
pub const RATE: f64 = 50.0;
pub const BURST: usize = 5;
pub const PROBES: usize = 2;
pub const SUCCESSES_TO_CLOSE: usize = 2;
/// How far a scheduler's watched view of a breaker may lag its KV entry: a
/// retry fired this soon after the breaker opened was let through before
/// the view changed.
pub const VIEW_LAG: chrono::Duration = chrono::Duration::milliseconds(500);

/// The rules in one line, for the printout.
pub const SUMMARY: &str = "stormpay: breaker opens at 50 % failures of at least 30 calls from 3 \
     sources, open 2 s, 2 half-open probes, 2 successes to close; retries 50/s, burst 5; retry \
     policy fixed 200 ms, 10 attempts; tenant and hard limits far above the load";

const ERROR_CODES: &str = "\
default:
  severity: medium
  category: permanent
  vendor_fault: false
  retry_policy: none
  description: Not a bench code.
codes:
  storm_timeout:
    severity: high
    category: transient
    vendor_fault: true
    retry_policy: storm_retry
    description: The vendor of the storm did not answer.
";

const RETRY_POLICIES: &str = "\
policies:
  storm_retry:
    kind: fixed
    initial_delay: 200ms
    max_delay: 200ms
    max_attempts: 10
    jitter: false
";

/// The vendor of the storm, added to the bench's limits far above the load.
const STORMPAY: &str = "\
vendors:
  stormpay:
    breaker:
      failure_rate_threshold: 0.5
      minimum_calls: 30
      min_distinct_sources: 3
      open_duration: 2s
      half_open_probes: 2
      successes_to_close: 2
      probe_timeout: 1h
    rate_limit:
      retries_per_second: 50
      burst: 5
";

fn vendor_config() -> String {
    format!(
        "{}{STORMPAY}",
        super::super::remediation::rules::VENDOR_CONFIG
    )
}

/// What the storm measured.
#[derive(Debug)]
pub struct StormFigures {
    pub runs: u64,
    /// The outage's failures as published.
    pub sent: Sent,
    /// Outcomes the engine published for retry commands, and those whose
    /// publish failed.
    pub outcomes: u64,
    pub outcomes_failed: u64,
    /// Retry commands received, and received again (same action and
    /// attempt).
    pub commands: u64,
    pub repeated_commands: u64,
    /// Messages on the commands subjects that are no retry command.
    pub unreadable_commands: u64,
    pub progress: BenchStormProgress,
    /// The breaker's transitions, and from the first failure's publication
    /// to its first opening.
    pub transitions: usize,
    pub opened_after: Option<Duration>,
    /// From the first failure to every incident acted on (the outage's
    /// length), and from the vendor's return to the breaker's last closing
    /// and to every incident resolved.
    pub outage: Duration,
    pub to_closed: Option<Duration>,
    pub to_resolved: Duration,
    /// Retries fired while the breaker was open (beyond [`VIEW_LAG`]), and
    /// the most fired in one half-open span.
    pub into_open: u64,
    pub most_half_open: usize,
    /// Retries fired after the breaker last closed, over how long, and the
    /// most fired within any one second.
    pub after_close: u64,
    pub after_close_span: Duration,
    pub most_in_a_second: usize,
    /// The vendor's return -> each retry fired after it.
    pub released: Histogram<u64>,
    pub workers: Vec<WorkerUse>,
}

impl StormFigures {
    /// Retries per second after the breaker closed, the burst aside.
    pub fn paced_rate(&self) -> f64 {
        let n = self.after_close.saturating_sub(BURST as u64) as f64;
        n / self.after_close_span.as_secs_f64().max(1e-6)
    }
}

/// The failure or success of one run, as the workflow engine reports it.
fn outcome(key: &str, workflow: &str, run: &str, ok: bool, at: DateTime<Utc>) -> String {
    let mut e = serde_json::json!({
        "idempotency_key": key,
        "workflow_id": workflow,
        "workflow_run_id": run,
        "event_type": if ok { "step_succeeded" } else { "step_failed" },
        "occurred_at": at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "step": "charge",
        "vendor": VENDOR,
    });
    if !ok {
        e["error"] = serde_json::json!({
            "code": CODE, "message": "timed out", "http_status": 504,
        });
    }
    e.to_string()
}

fn slug(tenant: usize) -> String {
    format!("bench-storm-{tenant}")
}

async fn publish(bus: &Bus, tenant: &str, workflow: &str, key: String, body: String) -> bool {
    let msg = Outgoing {
        subject: bus.ns().events_subject(tenant, workflow),
        msg_id: key,
        correlation_id: None,
        headers: Vec::new(),
        payload: Bytes::from(body),
    };
    bus.publish(msg).await.is_ok()
}

/// The workflow engine: each retry command makes its run fail again while
/// the vendor is down and succeed once it is back.
struct Engine {
    recovered: Arc<AtomicBool>,
    outcomes: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    commands: Arc<AtomicU64>,
    repeated: Arc<AtomicU64>,
    unreadable: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Engine {
    async fn start(bus: Arc<Bus>) -> anyhow::Result<Self> {
        let mut messages = bus
            .subscribe(format!("{}.commands.>", bus.ns().as_str()))
            .await?;
        let recovered = Arc::new(AtomicBool::new(false));
        let (outcomes, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (commands, repeated) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let unreadable = Arc::new(AtomicU64::new(0));
        let task = {
            let (recovered, outcomes, failed) =
                (recovered.clone(), outcomes.clone(), failed.clone());
            let (commands, repeated) = (commands.clone(), repeated.clone());
            let unreadable = unreadable.clone();
            tokio::spawn(async move {
                let mut seen = HashSet::new();
                while let Some(m) = messages.next().await {
                    let Ok(c) = serde_json::from_slice::<RetryCommandV1>(&m.payload) else {
                        unreadable.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    if !seen.insert(c.msg_id()) {
                        repeated.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    commands.fetch_add(1, Ordering::Relaxed);
                    let ok = recovered.load(Ordering::SeqCst);
                    let run = c.workflow_run_id.clone().unwrap_or_default();
                    let body = outcome(&c.msg_id(), &c.workflow_id, &run, ok, Utc::now());
                    let (bus, outcomes, failed) = (bus.clone(), outcomes.clone(), failed.clone());
                    tokio::spawn(async move {
                        if publish(&bus, &c.tenant, &c.workflow_id, c.msg_id(), body).await {
                            outcomes.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            })
        };
        Ok(Self {
            recovered,
            outcomes,
            failed,
            commands,
            repeated,
            unreadable,
            task,
        })
    }
}

impl Bench {
    /// Runs `storm`.
    pub(in crate::bench) async fn storm(&self) -> anyhow::Result<StormFigures> {
        let mode = Mode::Storm;
        let a = &self.args;
        let rules = BenchRules::write_all(
            &format!("{}-{}", self.run_id, mode.tag()),
            ERROR_CODES,
            RETRY_POLICIES,
            &vendor_config(),
        )?;
        let mut config = self.config_for(mode);
        config.rules.dir = rules.dir().to_string_lossy().into_owned();
        awfdrs_runtime::require_secrets_key(&config, "the storm mode's scheduler")?;
        let ctx = Context::connect(config.clone()).await?;
        ctx.bus.declare_streams().await?;
        let mut tenants = Vec::new();
        for t in 0..TENANTS {
            let tenant = ctx
                .store
                .create_tenant(&slug(t), &awfdrs_domain::new_api_key())
                .await?;
            tenants.push(tenant.id);
        }
        ctx.store.pool().close().await;

        let producer = self.producer(mode).await?;
        let engine = Engine::start(producer.clone()).await?;
        let logs =
            std::env::temp_dir().join(format!("awfdrs-bench-{}-{}", self.run_id, mode.tag()));
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let mut env = self.worker_env(&config);
        env.extend(
            [
                ("AWFDRS__COORDINATOR__HOLD_CHECK_MS", "50"),
                ("AWFDRS__DETECTOR__AUTO_RESOLVE_SUCCESSES", "1"),
                ("AWFDRS__ANALYZER__BREAKER_CHECK_MS", "3600000"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let mut running = Vec::new();
        for name in WORKERS {
            for index in 1..=a.processes {
                running.push(Worker::spawn(name, index, &env, &logs)?);
            }
        }
        let http = reqwest::Client::new();
        for w in &mut running {
            w.ready(&http).await?;
        }
        let probe = Store::connect(self.db.url(), 1, Duration::from_secs(5)).await?;
        for w in &mut running {
            w.start_load();
        }

        let result = async {
            let sent = outage(&producer, a.storm_runs, a.in_flight).await;
            if sent.accepted != a.storm_runs {
                bail!(
                    "{} of {} failures were not published: {}",
                    a.storm_runs - sent.accepted,
                    a.storm_runs,
                    sent.first_error.clone().unwrap_or_default()
                );
            }
            let runs = i64::try_from(a.storm_runs).unwrap_or(i64::MAX);
            wait_for(&probe, &tenants, &mut running, "acted on", |p| {
                p.actioned >= runs
            })
            .await?;
            let back = Utc::now();
            engine.recovered.store(true, Ordering::SeqCst);
            let progress = wait_for(&probe, &tenants, &mut running, "resolved", |p| {
                p.resolved >= runs
            })
            .await?;
            let resolved = Utc::now();
            let spans = probe.bench_breaker_transitions(VENDOR).await?;
            let fired = probe.bench_retries_fired(&tenants).await?;
            anyhow::Ok((sent, back, resolved, progress, spans, fired))
        }
        .await;
        sample(&mut running).ok();
        let usage: Vec<WorkerUse> = running.iter().map(Worker::usage).collect();
        let grace = Duration::from_secs(config.shutdown.grace_secs.saturating_add(5));
        futures::future::join_all(running.into_iter().map(|w| w.stop(grace))).await;
        engine.task.abort();
        probe.pool().close().await;
        let (sent, back, resolved, progress, spans, fired) = result?;
        if !a.keep {
            let _ = std::fs::remove_dir_all(&logs);
        }
        let mut f = figures(&sent, back, resolved, &spans, &fired);
        f.runs = a.storm_runs;
        f.sent = sent;
        f.progress = progress;
        f.outcomes = engine.outcomes.load(Ordering::Relaxed);
        f.outcomes_failed = engine.failed.load(Ordering::Relaxed);
        f.commands = engine.commands.load(Ordering::Relaxed);
        f.repeated_commands = engine.repeated.load(Ordering::Relaxed);
        f.unreadable_commands = engine.unreadable.load(Ordering::Relaxed);
        f.workers = usage;
        Ok(f)
    }
}

/// Publishes the outage: every run fails once, tenant after tenant in turn.
async fn outage(bus: &Arc<Bus>, runs: u64, in_flight: usize) -> Sent {
    let started = Utc::now();
    let clock = std::time::Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..runs {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let tenant = slug(usize::try_from(i).unwrap_or(0) % TENANTS);
        let (workflow, run) = (format!("flow-{i}"), format!("run-{i}"));
        let body = outcome(&format!("storm-{i}"), &workflow, &run, false, Utc::now());
        let bus = bus.clone();
        tasks.spawn(async move {
            let _permit = permit;
            publish(&bus, &tenant, &workflow, format!("storm-{i}"), body).await
        });
    }
    let mut sent = Sent::new(started);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(true) => sent.accepted += 1,
            _ => sent.refuse(0, 1, || "a publish of the outage failed".to_owned()),
        }
    }
    sent.elapsed = clock.elapsed();
    sent
}

/// Waits until `done` holds of the tenants' progress, sampling the workers;
/// gives up after [`STALLED`] without progress.
async fn wait_for(
    probe: &Store,
    tenants: &[Uuid],
    running: &mut [Worker],
    what: &str,
    done: impl Fn(&BenchStormProgress) -> bool,
) -> anyhow::Result<BenchStormProgress> {
    let mut progress = (-1_i64, tokio::time::Instant::now());
    loop {
        sample(running)?;
        let p = probe.bench_storm_progress(tenants).await?;
        if done(&p) {
            return Ok(p);
        }
        let moved = p.incidents + p.actioned + p.resolved + p.holds + p.fired;
        let now = tokio::time::Instant::now();
        if moved > progress.0 {
            progress = (moved, now);
        } else if now.duration_since(progress.1) > STALLED {
            bail!(
                "no progress for {STALLED:?} waiting for every incident {what}: {} incidents, {} \
                 acted on, {} resolved, {} holds ({} not ended), {} retries fired",
                p.incidents,
                p.actioned,
                p.resolved,
                p.holds,
                p.holds_open,
                p.fired
            );
        }
        tokio::time::sleep(SAMPLE).await;
    }
}

/// The breaker's state at `t` (closed before its first transition), and
/// since when.
fn state_at(spans: &[(DateTime<Utc>, String)], t: DateTime<Utc>) -> (DateTime<Utc>, &str) {
    spans
        .iter()
        .rev()
        .find(|(at, _)| *at <= t)
        .map_or((DateTime::<Utc>::MIN_UTC, "CLOSED"), |(at, s)| {
            (*at, s.as_str())
        })
}

fn since(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or(Duration::ZERO)
}

fn figures(
    sent: &Sent,
    back: DateTime<Utc>,
    resolved: DateTime<Utc>,
    spans: &[(DateTime<Utc>, String)],
    fired: &[DateTime<Utc>],
) -> StormFigures {
    let start = sent.started;
    let opened_after = spans
        .iter()
        .find(|(_, s)| s == "OPEN")
        .map(|(at, _)| since(start, *at));
    let mut into_open = 0;
    let mut half_open = BTreeMap::<DateTime<Utc>, usize>::new();
    for t in fired {
        match state_at(spans, *t) {
            (open, "OPEN") if *t - open >= VIEW_LAG => into_open += 1,
            (span, "HALF_OPEN") => *half_open.entry(span).or_default() += 1,
            _ => {}
        }
    }
    let closed = spans
        .iter()
        .rev()
        .find(|(_, s)| s == "CLOSED")
        .map(|(at, _)| *at);
    let after: Vec<DateTime<Utc>> = match closed {
        Some(c) => fired.iter().copied().filter(|t| *t >= c).collect(),
        None => Vec::new(),
    };
    let most_in_a_second = (0..after.len())
        .map(|i| {
            after[i..]
                .iter()
                .take_while(|u| **u - after[i] < chrono::Duration::seconds(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    let mut released = histogram();
    for t in fired.iter().filter(|t| **t >= back) {
        let us = (*t - back).num_microseconds().unwrap_or(0);
        let _ = released.record(u64::try_from(us).unwrap_or(0).max(1));
    }
    StormFigures {
        runs: 0,
        sent: Sent::new(start),
        outcomes: 0,
        outcomes_failed: 0,
        commands: 0,
        repeated_commands: 0,
        unreadable_commands: 0,
        progress: BenchStormProgress::default(),
        transitions: spans.len(),
        opened_after,
        outage: since(start, back),
        to_closed: closed.filter(|c| *c >= back).map(|c| since(back, c)),
        to_resolved: since(back, resolved),
        into_open,
        most_half_open: half_open.values().copied().max().unwrap_or(0),
        after_close: after.len() as u64,
        after_close_span: match (after.first(), after.last()) {
            (Some(a), Some(b)) => since(*a, *b),
            _ => Duration::ZERO,
        },
        most_in_a_second,
        released,
        workers: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storm_rules_load_with_the_vendor_s_breaker_and_rate() {
        let rules = BenchRules::write_all(
            &format!("stormtest{}", std::process::id()),
            ERROR_CODES,
            RETRY_POLICIES,
            &vendor_config(),
        )
        .expect("written");
        let loaded = awfdrs_rules::Rules::load(rules.dir()).expect("the storm rules load");
        let code = loaded.error_code(CODE);
        assert!(code.vendor_fault);
        let v = loaded.vendor(VENDOR);
        assert!((v.rate_limit.retries_per_second - RATE).abs() < f64::EPSILON);
        assert_eq!(v.rate_limit.burst as usize, BURST);
        assert_eq!(v.breaker.half_open_probes as usize, PROBES);
        assert_eq!(v.breaker.successes_to_close as usize, SUCCESSES_TO_CLOSE);
    }

    #[test]
    fn retries_into_an_open_breaker_and_the_pace_after_it_closed_are_read_from_the_spans() {
        let t0 = Utc::now();
        let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        let spans = vec![
            (at(100), "OPEN".to_owned()),
            (at(2_100), "HALF_OPEN".to_owned()),
            (at(2_300), "CLOSED".to_owned()),
        ];
        // One let through by the view's lag, one into the open breaker, two
        // probes, then eleven after the close, six within its first second.
        let mut fired = vec![at(200), at(1_000), at(2_150), at(2_200)];
        fired.extend((0..6).map(|i| at(2_400 + i * 10)));
        fired.extend((0..5).map(|i| at(3_500 + i * 100)));
        let sent = Sent::new(t0);
        let f = figures(&sent, at(2_000), at(5_000), &spans, &fired);
        assert_eq!(f.opened_after, Some(Duration::from_millis(100)));
        assert_eq!(f.into_open, 1);
        assert_eq!(f.most_half_open, 2);
        assert_eq!(f.after_close, 11);
        assert_eq!(f.most_in_a_second, 6);
        assert_eq!(f.after_close_span, Duration::from_millis(1_500));
        assert_eq!(f.to_closed, Some(Duration::from_millis(300)));
        assert_eq!(f.released.len(), 13);
    }
}
