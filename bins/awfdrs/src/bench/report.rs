//! The benchmark's printout. The run fills one [`Report`] (in `model`,
//! each mode's part made in `build`); [`Printout`] prints it as the human
//! table while it grows (the settings, one line per mode as it ends, then
//! the load side, where the time went, what was persisted and memory), or
//! once at the end as one JSON document (`--json`).

use std::io::Write as _;

use super::machine::GROUPS;

mod blocks;
pub(super) mod build;
pub(super) mod model;
mod notifier;
mod remediation;
mod storm;
mod whole;

pub(super) use blocks::{analysis, slow_clients};
use model::{ModeReport, Percentiles, Preload, Report, Storage};
pub(super) use notifier::notifier;
pub(super) use remediation::{remediation, scheduler};
pub(super) use storm::storm;
pub(super) use whole::whole_loop;

/// `12345678` as `12,345,678`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(ms: f64) -> String {
    format!("{ms:.1}")
}

fn percentiles(p: Option<Percentiles>) -> [String; 4] {
    let Some(p) = p else {
        return ["-".into(), "-".into(), "-".into(), "-".into()];
    };
    [ms(p.p50), ms(p.p95), ms(p.p99), ms(p.max)]
}

fn flush() {
    let _ = std::io::stdout().flush();
}

/// The report of a run, printed as it is made (the table) or at its end
/// (JSON).
#[derive(Debug)]
pub(super) struct Printout {
    json: bool,
    /// Whether the run has ingestion modes (the table's header and footer).
    pipelines: bool,
    table_head: bool,
    pub report: Report,
}

impl Printout {
    /// Starts the printout with the run's settings.
    pub fn new(json: bool, pipelines: bool, report: Report) -> Self {
        let out = Self {
            json,
            pipelines,
            table_head: false,
            report,
        };
        if !json {
            if pipelines {
                header(&out.report);
            } else {
                let m = &out.report.machine;
                println!(
                    "awfdrs bench: PostgreSQL {}; nats-server {}",
                    m.postgresql, m.nats_server
                );
            }
            flush();
        }
        out
    }

    /// The events written before the modes, and what they take.
    pub fn preload(&mut self, p: Preload, s: Storage) {
        if !self.json {
            println!(
                "  preloaded  {} events in {:.1} s ({}/s; VACUUM ANALYZE {:.1} s)",
                count(p.events),
                p.seconds,
                count(p.per_second.round() as u64),
                p.analyze_seconds
            );
            storage(&s);
        }
        self.report.preload = Some(p);
        self.report.storage.push(s);
    }

    /// A mode's figures, as it ends.
    pub fn mode(&mut self, m: ModeReport) {
        if !self.json {
            if m.ingestion.is_some() {
                if !self.table_head {
                    self.table_head = true;
                    table_head();
                }
                row(&m);
            } else {
                print!("{}", m.text);
                flush();
            }
        }
        self.report.modes.push(m);
    }

    /// The rate of the raw ceiling, when it ran.
    pub fn ceiling_rate(&self) -> Option<f64> {
        self.report
            .modes
            .iter()
            .find(|m| m.mode == "ceiling")
            .map(|m| m.per_second)
    }

    /// After the ingestion modes: the table's other sections.
    pub fn ingestion_done(&self) {
        if !self.json && self.pipelines {
            footer(&self.report);
        }
    }

    /// Ends the run: what the events take, then (JSON) the whole report.
    ///
    /// # Errors
    /// When the report cannot be written.
    pub fn finish(mut self, s: Storage) -> anyhow::Result<()> {
        if !self.json {
            println!();
            storage(&s);
        }
        self.report.storage.push(s);
        self.report.checks_passed = self
            .report
            .modes
            .iter()
            .all(|m| m.checks.iter().all(|c| c.ok));
        if self.json {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &self.report)?;
            writeln!(out)?;
            out.flush()?;
        } else if !self.report.checks_passed {
            for m in &self.report.modes {
                for c in m.checks.iter().filter(|c| !c.ok) {
                    println!("check failed  {}: {} ({})", m.label, c.name, c.detail);
                }
            }
        }
        flush();
        Ok(())
    }
}

fn storage(s: &Storage) {
    let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
    println!(
        "storage    {}: {} events, {} idempotency keys; events {:.1} MiB, ingest_keys {:.1} MiB \
         (with indexes and TOAST): {} bytes per stored event",
        s.when,
        count(u64::try_from(s.events).unwrap_or(0)),
        count(u64::try_from(s.ingest_keys).unwrap_or(0)),
        mib(s.events_bytes),
        mib(s.ingest_keys_bytes),
        s.bytes_per_event
            .map_or_else(|| "-".to_owned(), |b| count(b.round() as u64)),
    );
    flush();
}

fn header(r: &Report) {
    let (m, a) = (&r.machine, &r.settings);
    let has = |mode: &str| a.modes.iter().any(|m| m == mode);
    println!("awfdrs bench");
    println!(
        "  machine    {} cores{}; PostgreSQL {}; nats-server {} at {} (file storage, {} \
         replica{}); awfdrs {} ({} build)",
        m.cores,
        m.kernel
            .as_deref()
            .map_or_else(String::new, |k| format!(", Linux {k}")),
        m.postgresql,
        m.nats_server,
        m.nats_url,
        m.nats_replicas,
        if m.nats_replicas == 1 { "" } else { "s" },
        r.awfdrs,
        r.build
    );
    println!(
        "  run        database {} (dropped at the end), namespaces {} (deleted)",
        a.database, a.namespaces
    );
    println!(
        "  events     {} per mode, {}-byte JSON bodies, unique idempotency keys; {}% \
         step_succeeded, {}% step_failed over {} signatures ({} workflows x codes {})",
        count(a.events_per_mode),
        a.body_bytes,
        a.success_percent,
        100 - a.success_percent,
        a.signatures,
        a.workflows,
        a.codes.join(",")
    );
    println!(
        "  detector   one transaction per batch of up to {}, linger {} ms; pool {} connections; \
         max_ack_pending {}",
        a.detector_batch_size,
        a.detector_linger_ms,
        a.pool_connections,
        count(u64::try_from(a.max_ack_pending).unwrap_or(0))
    );
    let mut load = vec![format!(
        "NATS: own connection, up to {} publishes awaiting their ack",
        count(a.in_flight as u64)
    )];
    if has("nats") {
        load.push(format!("paced at {}/s", count(a.rate)));
    }
    println!("  load       {}", load.join("; "));
    if has("http") || has("http-batch") {
        println!(
            "             HTTP: {} keep-alive clients one event per request; {} clients {} events \
             per batch request; ingress limit lifted",
            a.http_concurrency, a.http_batch_concurrency, a.http_batch
        );
    }
    if a.preload > 0 {
        println!(
            "  preload    {} events (with their idempotency keys) written straight into \
             PostgreSQL before the modes, then ANALYZE",
            count(a.preload)
        );
    }
    if a.warmup > 0 {
        println!(
            "  warm-up    {} events through NATS and the detector first, then ANALYZE: the modes \
             plan their queries on a populated database with statistics",
            count(a.warmup)
        );
    }
    println!(
        "  latency    (intended) send -> commit of the transaction that stores the event and \
         updates its incident; probed every {} ms",
        a.probe_ms
    );
}

fn table_head() {
    println!();
    println!(
        "{:<22} {:>8} {:>8} {:>9} {:>10}   {:>7} {:>7} {:>7} {:>7}",
        "mode",
        "events",
        "seconds",
        "events/s",
        "of ceiling",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms"
    );
}

fn row(m: &ModeReport) {
    let of_ceiling = m
        .of_ceiling
        .map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", 100.0 * r));
    let [p50, p95, p99, max] = percentiles(m.latency_ms);
    println!(
        "{:<22} {:>8} {:>8.2} {:>9} {:>10}   {p50:>7} {p95:>7} {p99:>7} {max:>7}",
        m.label,
        count(m.count),
        m.seconds,
        count(m.per_second.round() as u64),
        of_ceiling,
    );
    flush();
}

mod footer;
use footer::footer;
