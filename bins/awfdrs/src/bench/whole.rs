//! The loop modes (`loop`, `loop-2`): the whole loop, each worker its own
//! process. Events published on NATS at `--loop-rate` over `--signatures`
//! signatures (see [`load`]: 90 % failures, three codes of five retried at
//! once, two escalated) go through `--processes` child processes of each
//! worker (`loop-2`: twice as many; see [`workers`]): detector, analyzer,
//! coordinator, scheduler, notifier, under rules written for the run (retries
//! due 1 ms after their decision, limits far above the load); escalations
//! are told to one webhook channel on a local receiver, retry commands are
//! watched on NATS. Once every incident has had its retry fired or its
//! notification delivered, the hops are read from the tables' timestamps:
//! event published -> committed (`events.occurred_at`, the instant it was
//! due, to `received_at`), incident opened -> decision recorded -> action
//! recorded -> retry fired (`actions.fired_at`) or notification delivered
//! (`notifications.delivered_at`). Each worker's CPU time and resident
//! memory are sampled from `/proc` meanwhile.

mod load;
pub mod storm;
mod workers;

use std::time::Duration;

use anyhow::{Context as _, bail};
use awfdrs_runtime::Context;
use awfdrs_store::{BenchLoopIncident, BenchTally, NewChannel, Store};
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;

use super::load::{Sent, histogram};
use super::notifier::receive::Receivers;
use super::remediation::rules::BenchRules;
use super::remediation::watch::Watcher;
use super::{Bench, Mode};
pub use workers::WorkerUse;
use workers::{WORKERS, Worker};

/// How long the mode waits without progress before it gives up.
const STALLED: Duration = Duration::from_secs(60);
/// How often the workers are sampled while the loop runs.
const SAMPLE: Duration = Duration::from_millis(200);

/// What a loop mode measured.
#[derive(Debug)]
pub struct Figures {
    pub processes: usize,
    pub sent: Sent,
    /// Events handed to the publisher (taken or not).
    pub offered: u64,
    pub expected_incidents: u64,
    pub expected_retries: u64,
    pub tally: BenchTally,
    /// From the first event's due instant to the last event's commit.
    pub storing: Duration,
    /// From the first event's due instant to the loop's last step (retry
    /// fired or notification delivered).
    pub looping: Duration,
    /// Incidents with other than one decision, or one action.
    pub odd_decisions: u64,
    pub odd_actions: u64,
    /// Retries fired; retry commands received, and again.
    pub fired: u64,
    pub commands: u64,
    pub repeated_commands: u64,
    /// Notifications recorded, delivered, their tries; received by the
    /// receiver, again, unverified.
    pub notifications: u64,
    pub delivered: u64,
    pub tries: u64,
    pub received: u64,
    pub repeated_notifications: u64,
    pub unverified: u64,
    /// The hops, in microseconds.
    pub committed: Histogram<u64>,
    pub analysed: Histogram<u64>,
    pub actioned: Histogram<u64>,
    pub retried: Histogram<u64>,
    pub notified: Histogram<u64>,
    /// The incident's first failure -> retry fired / notification delivered.
    pub to_retry: Histogram<u64>,
    pub to_notification: Histogram<u64>,
    pub workers: Vec<WorkerUse>,
}

impl Figures {
    /// Events stored per second, from the first due to the last commit.
    pub fn rate(&self) -> f64 {
        self.tally.events as f64 / self.storing.as_secs_f64().max(1e-6)
    }
}

/// The processes of each worker a loop mode runs.
pub(super) fn processes(mode: Mode, processes: usize) -> usize {
    if mode == Mode::Loop2 {
        processes * 2
    } else {
        processes
    }
}

impl Bench {
    /// Runs `loop` or `loop-2`.
    pub(super) async fn whole_loop(&self, mode: Mode) -> anyhow::Result<Figures> {
        let a = &self.args;
        let processes = processes(mode, a.processes);
        let rules = BenchRules::write_codes(
            &format!("{}-{}", self.run_id, mode.tag()),
            &load::error_codes(),
        )?;
        let mut config = self.config_for(mode);
        config.rules.dir = rules.dir().to_string_lossy().into_owned();
        awfdrs_runtime::require_secrets_key(&config, "the loop mode's notifier and scheduler")?;
        let ctx = Context::connect(config.clone()).await?;
        ctx.bus.declare_streams().await?;
        let slug = format!("bench-{}", mode.tag());
        let tenant = ctx
            .store
            .create_tenant(&slug, &awfdrs_domain::new_api_key())
            .await?;
        let secret = awfdrs_domain::webhook::new_secret();
        let receivers = Receivers::start(std::slice::from_ref(&secret)).await?;
        let url = receivers.urls.first().cloned().unwrap_or_default();
        ctx.store
            .add_channel(&NewChannel {
                tenant_id: tenant.id,
                name: "oncall",
                kind: "webhook",
                url: &url,
                secret: &secret,
                min_severity: "low",
                routing_key: None,
                level: 1,
                escalate_after_ms: None,
                rate_per_minute: None,
            })
            .await?;
        ctx.store.pool().close().await;

        let producer = self.producer(mode).await?;
        let watcher = Watcher::start(&producer, &slug).await?;
        let logs =
            std::env::temp_dir().join(format!("awfdrs-bench-{}-{}", self.run_id, mode.tag()));
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let env = self.worker_env(&config);
        let mut running = Vec::new();
        for name in WORKERS {
            for index in 1..=processes {
                running.push(Worker::spawn(name, index, &env, &logs)?);
            }
        }
        let http = reqwest::Client::new();
        for w in &mut running {
            w.ready(&http).await?;
        }
        let probe = Store::connect(self.db.url(), 1, Duration::from_secs(5)).await?;

        let events = std::sync::Arc::new(load::LoopEvents::new(&slug, a.signatures));
        let rate = Some(a.loop_rate).filter(|r| *r > 0);
        for w in &mut running {
            w.start_load();
        }
        let publisher = {
            let (bus, events, slug) = (producer.clone(), events.clone(), slug.clone());
            let (n, in_flight) = ((a.loop_events, self.budget()), a.in_flight);
            tokio::spawn(async move {
                super::load::publish(bus, events, &slug, n, rate, in_flight).await
            })
        };
        let stop_publishing = publisher.abort_handle();
        let result = async {
            while !publisher.is_finished() {
                sample(&mut running)?;
                tokio::time::sleep(SAMPLE).await;
            }
            let sent = publisher.await.context("the publisher panicked")?;
            let offered = sent.accepted + sent.refused.values().sum::<u64>();
            let expected = events.expected(offered);
            let (incidents, retries) = expected.incidents();
            let goal = Goal {
                events: sent.accepted,
                incidents,
                retries,
                notifications: incidents - retries,
            };
            wait_done(&probe, tenant.id, &goal, &watcher, &receivers, &mut running).await?;
            let tally = probe.bench_tally(tenant.id).await?;
            let times = probe.bench_event_times(tenant.id).await?;
            let rows = probe.bench_loop_incidents(tenant.id).await?;
            anyhow::Ok((sent, offered, goal, tally, times, rows))
        }
        .await;
        stop_publishing.abort();
        sample(&mut running).ok();
        let usage: Vec<WorkerUse> = running.iter().map(Worker::usage).collect();
        let grace = Duration::from_secs(config.shutdown.grace_secs.saturating_add(5));
        futures::future::join_all(running.into_iter().map(|w| w.stop(grace))).await;
        let arrivals = watcher.stop().await;
        let received = receivers.stop();
        probe.pool().close().await;
        let (sent, offered, goal, tally, times, rows) = result?;
        if !a.keep {
            let _ = std::fs::remove_dir_all(&logs);
        }

        let mut f = figures(processes, sent, &times, &rows, tally);
        f.offered = offered;
        f.expected_incidents = goal.incidents;
        f.expected_retries = goal.retries;
        f.commands = arrivals.first.len() as u64;
        f.repeated_commands = arrivals.repeated + arrivals.unreadable;
        f.received = received.first.len() as u64;
        f.repeated_notifications = received.repeated;
        f.unverified = received.unverified;
        f.workers = usage;
        Ok(f)
    }

    /// The workers' environment on top of this process's: the mode's
    /// database, namespace and rules, and the settings the notifier mode
    /// runs under (loopback receivers, no grouping, no channel limit).
    fn worker_env(&self, config: &awfdrs_config::Config) -> Vec<(String, String)> {
        [
            ("DATABASE_URL", config.database.url.as_str()),
            ("NATS_URL", config.nats.url.as_str()),
            ("AWFDRS_NAMESPACE", config.namespace.as_str()),
            ("AWFDRS__RULES__DIR", config.rules.dir.as_str()),
            ("AWFDRS__NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "true"),
            ("AWFDRS__NOTIFICATIONS__GROUP_WINDOW_MS", "0"),
            ("AWFDRS__NOTIFICATIONS__CHANNEL_RATE_PER_MINUTE", "60000"),
            ("AWFDRS__NOTIFICATIONS__CHANNEL_BURST", "10000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain(
            self.config_file
                .iter()
                .map(|f| ("AWFDRS_CONFIG".to_owned(), f.clone())),
        )
        .collect()
    }
}

/// What the loop is done at.
struct Goal {
    events: u64,
    incidents: u64,
    retries: u64,
    notifications: u64,
}

/// Samples every worker; fails when one has exited.
fn sample(running: &mut [Worker]) -> anyhow::Result<()> {
    for w in running.iter_mut() {
        if let Some(status) = w.exited() {
            bail!(
                "worker {} #{} exited ({status}); see {}",
                w.name,
                w.index,
                w.log.display()
            );
        }
        w.sample();
    }
    Ok(())
}

/// Waits until every event is stored, every incident has come to the end
/// of the loop and every command and notification has arrived, sampling
/// the workers meanwhile; gives up after [`STALLED`] without progress.
async fn wait_done(
    probe: &Store,
    tenant: uuid::Uuid,
    goal: &Goal,
    watcher: &Watcher,
    receivers: &Receivers,
    running: &mut [Worker],
) -> anyhow::Result<()> {
    let mut progress = (0_u64, tokio::time::Instant::now());
    loop {
        sample(running)?;
        let stored = u64::try_from(probe.bench_stored(tenant).await?).unwrap_or(0);
        let (incidents, done) = probe.bench_loop_done(tenant).await?;
        let (incidents, done) = (
            u64::try_from(incidents).unwrap_or(0),
            u64::try_from(done).unwrap_or(0),
        );
        let (commands, notified) = (watcher.seen(), receivers.seen());
        if stored >= goal.events
            && incidents >= goal.incidents
            && done >= goal.incidents
            && commands >= goal.retries
            && notified >= goal.notifications
        {
            return Ok(());
        }
        let now = tokio::time::Instant::now();
        let moved = stored + incidents + done + commands + notified;
        if moved > progress.0 {
            progress = (moved, now);
        } else if now.duration_since(progress.1) > STALLED {
            bail!(
                "no progress for {STALLED:?}: {stored} of {} events stored, {incidents} of {} \
                 incidents opened, {done} through the loop, {commands} of {} retry commands and \
                 {notified} of {} notifications received",
                goal.events,
                goal.incidents,
                goal.retries,
                goal.notifications
            );
        }
        tokio::time::sleep(SAMPLE).await;
    }
}

fn record(h: &mut Histogram<u64>, from: DateTime<Utc>, to: Option<DateTime<Utc>>) {
    if let Some(to) = to {
        let us = (to - from).num_microseconds().unwrap_or(0);
        let _ = h.record(u64::try_from(us).unwrap_or(0).max(1));
    }
}

fn figures(
    processes: usize,
    sent: Sent,
    times: &[(DateTime<Utc>, DateTime<Utc>)],
    rows: &[BenchLoopIncident],
    tally: BenchTally,
) -> Figures {
    let mut committed = histogram();
    let mut last = sent.started;
    for (occurred, received) in times {
        record(&mut committed, *occurred, Some(*received));
        last = last.max(*received);
    }
    let storing = super::outcome::window(sent.started, last);
    let (mut analysed, mut actioned, mut retried, mut notified) =
        (histogram(), histogram(), histogram(), histogram());
    let (mut to_retry, mut to_notification) = (histogram(), histogram());
    let mut end = last;
    let (mut fired, mut notifications, mut delivered, mut tries) = (0, 0, 0, 0);
    for r in rows {
        record(&mut analysed, r.opened_at, r.decided_at);
        if let Some(decided) = r.decided_at {
            record(&mut actioned, decided, r.actioned_at);
        }
        let kind = r.action_kind.as_deref();
        if let (Some("retry"), Some(at)) = (kind, r.actioned_at) {
            record(&mut retried, at, r.fired_at);
            record(&mut to_retry, r.first_seen, r.fired_at);
        }
        if let (Some("escalate"), Some(at)) = (kind, r.actioned_at) {
            record(&mut notified, at, r.delivered_at);
            record(&mut to_notification, r.first_seen, r.delivered_at);
        }
        fired += u64::from(r.fired_at.is_some());
        notifications += u64::try_from(r.notifications).unwrap_or(0);
        delivered += u64::try_from(r.delivered).unwrap_or(0);
        tries += u64::try_from(r.tries).unwrap_or(0);
        for t in [r.fired_at, r.delivered_at].into_iter().flatten() {
            end = end.max(t);
        }
    }
    Figures {
        processes,
        looping: super::outcome::window(sent.started, end),
        sent,
        offered: 0,
        expected_incidents: 0,
        expected_retries: 0,
        tally,
        storing,
        odd_decisions: rows.iter().filter(|r| r.decisions != 1).count() as u64,
        odd_actions: rows.iter().filter(|r| r.actions != 1).count() as u64,
        fired,
        commands: 0,
        repeated_commands: 0,
        notifications,
        delivered,
        tries,
        received: 0,
        repeated_notifications: 0,
        unverified: 0,
        committed,
        analysed,
        actioned,
        retried,
        notified,
        to_retry,
        to_notification,
        workers: Vec::new(),
    }
}
