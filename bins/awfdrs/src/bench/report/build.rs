//! A mode's [`ModeReport`] from what it measured: the figures, and the
//! correctness checks each kind of mode makes of them; and the report's
//! start, the machine and the settings.

use clap::ValueEnum as _;

use super::model::{
    Check, Cpu, Ingestion, Machine, Memory, ModeReport, Percentiles, Persisted, Report, Settings,
};
use crate::bench::machine::CpuUse;
use crate::bench::remediation::per_second;
use crate::bench::{
    Bench, Mode, Outcome, analysis, load, machine, notifier, remediation, slow, whole,
};

/// The name `--modes` knows `mode` by.
fn name(mode: Mode) -> String {
    mode.to_possible_value()
        .map_or_else(|| mode.tag().to_owned(), |v| v.get_name().to_owned())
}

fn cpu(c: &CpuUse, events: u64) -> Cpu {
    let per_event = |cores: f64| {
        if events == 0 {
            0.0
        } else {
            cores * c.seconds * 1000.0 / events as f64
        }
    };
    Cpu {
        cores: c.by_group.iter().copied().collect(),
        machine_cores: c.machine,
        ms_per_event: c
            .by_group
            .iter()
            .map(|(g, cores)| (*g, per_event(*cores)))
            .collect(),
    }
}

/// An ingestion mode (or the raw ceiling), against the ceiling's rate of
/// the same run if it ran first.
pub fn ingestion(o: &Outcome, ceiling_rate: Option<f64>) -> ModeReport {
    let b = &o.consumer;
    let per_batch = |v: f64| if b.batches > 0.0 { v / b.batches } else { 0.0 };
    let refused: u64 = o.sent.refused.values().sum();
    let mut checks = vec![
        Check::equal(
            "every accepted event stored once",
            o.stored,
            o.sent.accepted,
        ),
        Check::none("events refused or lost", refused),
    ];
    let persisted = o.tally.map(|t| {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        checks.push(Check::equal(
            "incidents count every failure once",
            n(t.incident_events),
            n(t.opened_failures),
        ));
        Persisted {
            events: t.events,
            failures: t.failures,
            held_back: t.failures - t.opened_failures,
            incidents: t.incidents,
            incident_events: t.incident_events,
            unseen_commits: o.latencies.as_ref().map_or(0, |l| l.unseen),
        }
    });
    let latencies = o.latencies.as_ref();
    ModeReport {
        mode: name(o.mode),
        label: o.label.clone(),
        unit: "events",
        count: o.stored,
        seconds: o.window.as_secs_f64(),
        per_second: o.rate(),
        of_ceiling: ceiling_rate
            .filter(|_| o.mode != Mode::Ceiling)
            .map(|c| o.rate() / c.max(1e-6)),
        latency_ms: latencies.and_then(|l| Percentiles::of(&l.commit)),
        cpu: Some(cpu(&o.cpu, o.stored)),
        memory: Memory::from_kib(machine::memory_kib()),
        checks,
        ingestion: Some(Ingestion {
            accepted: o.sent.accepted,
            send_seconds: o.sent.elapsed.as_secs_f64(),
            requests_ms: Percentiles::of(&o.sent.requests),
            cut_short: o.sent.cut_short,
            refused: o.sent.refused.clone(),
            first_error: o.sent.first_error.clone(),
            batches: b.batches as u64,
            batch_size: per_batch(b.messages),
            batch_ms: per_batch(b.seconds) * 1000.0,
            tx_ms: latencies
                .filter(|l| l.transactions > 0)
                .map(|l| l.mean_tx_micros / 1000.0),
            busy: b.seconds / o.window.as_secs_f64().max(1e-6),
            to_tx_ms: latencies.and_then(|l| Percentiles::of(&l.tx_start)),
            persisted,
        }),
        text: String::new(),
    }
}

/// A mode other than ingestion, with its printout.
fn other(mode: Mode, label: &str, unit: &'static str, text: String) -> ModeReport {
    ModeReport {
        mode: name(mode),
        label: label.to_owned(),
        unit,
        count: 0,
        seconds: 0.0,
        per_second: 0.0,
        of_ceiling: None,
        latency_ms: None,
        cpu: None,
        memory: None,
        checks: Vec::new(),
        ingestion: None,
        text,
    }
}

pub fn analysis(mode: Mode, label: &str, f: &analysis::Figures, text: String) -> ModeReport {
    ModeReport {
        count: f.decided,
        seconds: f.deciding.as_secs_f64(),
        per_second: f.rate(),
        latency_ms: Percentiles::of(&f.latency),
        memory: Memory::from_kib(f.memory_kib),
        checks: vec![Check::equal(
            "every new incident decided",
            f.decided,
            f.sent,
        )],
        ..other(mode, label, "incidents", text)
    }
}

pub fn remediation(mode: Mode, label: &str, f: &remediation::Figures, text: String) -> ModeReport {
    ModeReport {
        count: f.recorded,
        seconds: f.recording.as_secs_f64(),
        per_second: per_second(f.recorded, f.recording),
        latency_ms: Percentiles::of(&f.latency),
        memory: Memory::from_kib(f.memory_kib),
        checks: vec![
            Check::equal("one action per decision", f.recorded, f.decisions),
            Check::equal("one retry command per decision", f.commands, f.decisions),
            Check::none("commands received twice", f.repeated),
            Check::none("retries paced by a rate limit", f.paced),
        ],
        ..other(mode, label, "actions", text)
    }
}

pub fn whole_loop(mode: Mode, label: &str, f: &whole::Figures, text: String) -> ModeReport {
    ModeReport {
        count: u64::try_from(f.tally.events).unwrap_or(0),
        seconds: f.storing.as_secs_f64(),
        per_second: f.rate(),
        latency_ms: Percentiles::of(&f.committed),
        checks: vec![
            Check::equal(
                "every event stored once",
                u64::try_from(f.tally.events).unwrap_or(0),
                f.sent.accepted,
            ),
            Check::none("incidents without exactly one decision", f.odd_decisions),
            Check::none("incidents without exactly one action", f.odd_actions),
            Check::equal("one command per retry fired", f.commands, f.fired),
            Check::none("commands received twice", f.repeated_commands),
            Check::none("notifications received twice", f.repeated_notifications),
            Check::none("notifications not verified", f.unverified),
        ],
        ..other(mode, label, "events", text)
    }
}

pub fn storm(mode: Mode, label: &str, f: &whole::storm::StormFigures, text: String) -> ModeReport {
    use whole::storm::{BURST, PROBES, RATE, SUCCESSES_TO_CLOSE};
    let p = &f.progress;
    let most = BURST + (RATE * 1.25) as usize;
    ModeReport {
        count: f.after_close,
        seconds: f.after_close_span.as_secs_f64(),
        per_second: f.paced_rate(),
        latency_ms: Percentiles::of(&f.released),
        checks: vec![
            Check::equal(
                "every incident resolved",
                u64::try_from(p.resolved).unwrap_or(0),
                f.runs,
            ),
            Check::none("holds not ended", u64::try_from(p.holds_open).unwrap_or(0)),
            Check {
                name: "the breaker opened",
                ok: f.opened_after.is_some(),
                detail: format!("{:?}", f.opened_after),
            },
            Check::none("retries fired into an open breaker", f.into_open),
            Check {
                name: "half-open spans within their probes",
                ok: f.most_half_open < PROBES + SUCCESSES_TO_CLOSE,
                detail: format!("at most {} in one span", f.most_half_open),
            },
            Check {
                name: "retries after the close within the rate limit",
                ok: f.most_in_a_second <= most,
                detail: format!(
                    "at most {} within a second, limit {most}",
                    f.most_in_a_second
                ),
            },
            Check::equal(
                "one command per retry fired",
                f.commands,
                u64::try_from(p.fired).unwrap_or(0),
            ),
            Check::none("commands received twice", f.repeated_commands),
            Check::none("unreadable commands", f.unreadable_commands),
        ],
        ..other(mode, label, "retries", text)
    }
}

pub fn scheduler(
    mode: Mode,
    label: &str,
    f: &remediation::SchedulerFigures,
    text: String,
) -> ModeReport {
    ModeReport {
        count: f.fired,
        seconds: f.firing.as_secs_f64(),
        per_second: per_second(f.fired, f.firing),
        latency_ms: Percentiles::of(&f.lateness),
        memory: Memory::from_kib(f.memory_kib),
        checks: vec![
            Check::equal("every scheduled retry fired", f.fired, f.scheduled),
            Check::none("retries fired before they were due", f.early),
            Check::equal("one command per retry", f.commands, f.scheduled),
            Check::none("commands received twice", f.repeated),
        ],
        ..other(mode, label, "retries", text)
    }
}

pub fn notifier(mode: Mode, label: &str, f: &notifier::Figures, text: String) -> ModeReport {
    let delivered: i64 = f
        .outcomes
        .iter()
        .filter(|o| o.status == "DELIVERED")
        .map(|o| o.notifications)
        .sum();
    ModeReport {
        count: f.received,
        seconds: f.receiving.as_secs_f64(),
        per_second: per_second(f.received, f.receiving),
        latency_ms: Percentiles::of(&f.latency),
        memory: Memory::from_kib(f.memory_kib),
        checks: vec![
            Check::equal("every notification received", f.received, f.expected),
            Check::equal(
                "every notification recorded DELIVERED",
                u64::try_from(delivered).unwrap_or(0),
                f.expected,
            ),
            Check::none("webhook-ids received twice", f.repeated),
            Check::none("notifications not of the run", f.unknown),
            Check::none("unverified signatures", f.unverified),
        ],
        ..other(mode, label, "notifications", text)
    }
}

pub fn slow_clients(mode: Mode, label: &str, f: &slow::Figures, text: String) -> ModeReport {
    let good = f.good.len();
    let accepted = f.statuses.get(&202).copied().unwrap_or(0);
    ModeReport {
        count: good,
        seconds: f.seconds,
        per_second: good as f64 / f.seconds.max(1e-6),
        latency_ms: Percentiles::of(&f.good),
        memory: Some(Memory {
            rss_mib: f.peak_kib as f64 / 1024.0,
            hwm_mib: f.hwm_kib as f64 / 1024.0,
        }),
        checks: vec![Check::equal("every good request accepted", accepted, good)],
        ..other(mode, label, "requests", text)
    }
}

impl Bench {
    /// The report's start: the machine and the settings of the run.
    pub(in crate::bench) fn report(
        &self,
        modes: &[Mode],
        postgresql: String,
        nats_server: String,
    ) -> Report {
        let (c, a) = (&self.config, &self.args);
        Report {
            awfdrs: env!("CARGO_PKG_VERSION").to_owned(),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            machine: Machine {
                cores: machine::cores(),
                kernel: machine::kernel(),
                postgresql,
                nats_server,
                nats_url: c.nats.url.clone(),
                nats_replicas: c.nats.replicas,
            },
            settings: Settings {
                modes: modes
                    .iter()
                    .filter_map(|m| m.to_possible_value())
                    .map(|v| v.get_name().to_owned())
                    .collect(),
                database: self.db.name().to_owned(),
                namespaces: format!("bench{}_<mode>", self.run_id),
                events_per_mode: a.events,
                body_bytes: self.events(Mode::Ceiling).body(0, chrono::Utc::now()).len(),
                success_percent: load::SUCCESS_PERCENT,
                signatures: load::WORKFLOW_COUNT * a.codes.len(),
                workflows: load::WORKFLOW_COUNT,
                codes: a.codes.clone(),
                warmup: if modes.iter().any(|m| m.is_ingestion()) {
                    a.warmup
                } else {
                    0
                },
                preload: a.preload,
                in_flight: a.in_flight,
                rate: a.rate,
                http_concurrency: a.http_concurrency,
                http_batch: a.http_batch,
                http_batch_concurrency: a.http_batch_concurrency,
                probe_ms: a.probe_ms,
                detector_batch_size: c.detector.batch_size,
                detector_linger_ms: c.detector.linger_ms,
                pool_connections: c.database.max_connections,
                max_ack_pending: c.consumer.max_ack_pending,
            },
            preload: None,
            storage: Vec::new(),
            modes: Vec::new(),
            checks_passed: true,
        }
    }
}
