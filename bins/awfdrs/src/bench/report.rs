//! The benchmark's printout: the settings, one line per mode as it ends,
//! then the load side, where the time went, what was persisted and memory.

use std::io::Write as _;

use hdrhistogram::Histogram;

use super::load::{SUCCESS_PERCENT, WORKFLOW_COUNT};
use super::machine::{self, GROUPS};
use super::{Bench, Mode, Outcome};

mod notifier;
mod remediation;
mod whole;

pub(super) use notifier::notifier;
pub(super) use remediation::{remediation, scheduler};
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

fn ms(micros: u64) -> String {
    format!("{:.1}", micros as f64 / 1000.0)
}

fn percentiles(h: Option<&Histogram<u64>>) -> [String; 4] {
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return ["-".into(), "-".into(), "-".into(), "-".into()];
    };
    [
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.95)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
    ]
}

fn flush() {
    let _ = std::io::stdout().flush();
}

pub(super) fn header(bench: &Bench, modes: &[Mode], pg_version: &str, nats_version: &str) {
    let c = &bench.config;
    let a = &bench.args;
    let sample = bench
        .events(Mode::Ceiling)
        .body(0, chrono::Utc::now())
        .len();
    println!("awfdrs bench");
    println!(
        "  machine    {} cores; PostgreSQL {pg_version}; nats-server {nats_version} at {} \
         (file storage, {} replica{})",
        machine::cores(),
        c.nats.url,
        c.nats.replicas,
        if c.nats.replicas == 1 { "" } else { "s" }
    );
    println!(
        "  run        database {} (dropped at the end), namespaces bench{}_<mode> (deleted)",
        bench.db.name(),
        bench.run_id
    );
    println!(
        "  events     {} per mode, {sample}-byte JSON bodies, unique idempotency keys; \
         {SUCCESS_PERCENT}% step_succeeded, {}% step_failed over {} signatures \
         ({WORKFLOW_COUNT} workflows x codes {})",
        count(a.events),
        100 - SUCCESS_PERCENT,
        WORKFLOW_COUNT * a.codes.len(),
        a.codes.join(",")
    );
    println!(
        "  detector   one transaction per batch of up to {}, linger {} ms; pool {} connections; \
         max_ack_pending {}",
        c.detector.batch_size,
        c.detector.linger_ms,
        c.database.max_connections,
        count(u64::try_from(c.consumer.max_ack_pending).unwrap_or(0))
    );
    let mut load = vec![format!(
        "NATS: own connection, up to {} publishes awaiting their ack",
        count(a.in_flight as u64)
    )];
    if modes.contains(&Mode::Nats) {
        load.push(format!("paced at {}/s", count(a.rate)));
    }
    println!("  load       {}", load.join("; "));
    if modes.contains(&Mode::Http) || modes.contains(&Mode::HttpBatch) {
        println!(
            "             HTTP: {} keep-alive clients one event per request; {} clients {} events \
             per batch request; ingress limit lifted",
            a.http_concurrency, a.http_batch_concurrency, a.http_batch
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
    flush();
}

pub(super) fn row(o: &Outcome, ceiling: Option<&Outcome>) {
    let of_ceiling = ceiling.filter(|c| c.mode == Mode::Ceiling).map_or_else(
        || "-".to_owned(),
        |c| format!("{:.0}%", 100.0 * o.rate() / c.rate()),
    );
    let [p50, p95, p99, max] = percentiles(o.latencies.as_ref().map(|l| &l.commit));
    println!(
        "{:<22} {:>8} {:>8.2} {:>9} {:>10}   {p50:>7} {p95:>7} {p99:>7} {max:>7}",
        o.label,
        count(o.stored),
        o.window.as_secs_f64(),
        count(o.rate().round() as u64),
        of_ceiling,
    );
    flush();
}

pub(super) fn footer(bench: &Bench, outcomes: &[Outcome]) {
    println!();
    println!(
        "{:<22} {:>8} {:>8} {:>9}   {:>7} {:>7} {:>7} {:>7}  (HTTP requests, client side)",
        "load side", "accepted", "seconds", "sent/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for o in outcomes {
        let [p50, p95, p99, max] = percentiles(Some(&o.sent.requests));
        println!(
            "{:<22} {:>8} {:>8.2} {:>9}   {p50:>7} {p95:>7} {p99:>7} {max:>7}",
            o.label,
            count(o.sent.accepted),
            o.sent.elapsed.as_secs_f64(),
            count((o.sent.accepted as f64 / o.sent.elapsed.as_secs_f64().max(1e-6)).round() as u64),
        );
        if o.sent.cut_short {
            println!(
                "{:<22} cut short: stopped sending after {} s (--max-seconds)",
                "", bench.args.max_seconds
            );
        }
        if !o.sent.refused.is_empty() {
            let refused: Vec<String> = o
                .sent
                .refused
                .iter()
                .map(|(status, n)| format!("{} x {status}", count(*n)))
                .collect();
            println!(
                "{:<22} refused: {} (first: {})",
                "",
                refused.join(", "),
                o.sent.first_error.as_deref().unwrap_or("?")
            );
        }
    }

    println!();
    let groups: String = GROUPS.iter().map(|g| format!(" {g:>8}")).collect();
    println!(
        "{:<22} {:>7} {:>5} {:>8} {:>5} {:>5} {:>13}  cpu cores:{groups} {:>8}",
        "where the time went",
        "batches",
        "size",
        "batch ms",
        "tx ms",
        "busy",
        "to tx p50/p99",
        "machine"
    );
    for o in outcomes {
        let b = &o.consumer;
        let per_batch = |v: f64| if b.batches > 0.0 { v / b.batches } else { 0.0 };
        let to_tx = o.latencies.as_ref().map_or_else(
            || "-".to_owned(),
            |l| {
                format!(
                    "{}/{}",
                    ms(l.tx_start.value_at_quantile(0.5)),
                    ms(l.tx_start.value_at_quantile(0.99))
                )
            },
        );
        let cores: String = o
            .cpu
            .by_group
            .iter()
            .map(|(_, c)| format!(" {c:>8.2}"))
            .collect();
        let tx = o
            .latencies
            .as_ref()
            .filter(|l| l.transactions > 0)
            .map_or_else(|| "-".to_owned(), |l| ms(l.mean_tx_micros.round() as u64));
        println!(
            "{:<22} {:>7} {:>5.0} {:>8.2} {tx:>5} {:>4.0}% {:>13}            {cores} {:>8.2}",
            o.label,
            count(b.batches as u64),
            per_batch(b.messages),
            per_batch(b.seconds) * 1000.0,
            100.0 * b.seconds / o.window.as_secs_f64().max(1e-6),
            to_tx,
            o.cpu.machine,
        );
    }
    println!(
        "  batch ms: handling one batch (decode, validate, transaction, acks; mean); tx ms: \
         start to seen commit of its transaction (mean, probe-late); busy: share of the mode's \
         time spent in batches; to tx: send -> start of the batch's transaction; cores: CPU used \
         (awfdrs = this process: load, gateway and detector; other = the rest of the machine)"
    );

    println!();
    for o in outcomes {
        match &o.tally {
            Some(t) => println!(
                "persisted  {:<22} {} of {} accepted events; {} failures counted in {} incidents \
                 (sum of event_count {}){}",
                o.label,
                count(u64::try_from(t.events).unwrap_or(0)),
                count(o.sent.accepted),
                count(u64::try_from(t.failures).unwrap_or(0)),
                t.incidents,
                count(u64::try_from(t.incident_events).unwrap_or(0)),
                o.latencies.as_ref().filter(|l| l.unseen > 0).map_or_else(
                    String::new,
                    |l| format!("; {} commits not seen by the probe", l.unseen)
                ),
            ),
            None => println!(
                "persisted  {:<22} {} of {} accepted messages in the bare table",
                o.label,
                count(o.stored),
                count(o.sent.accepted)
            ),
        }
    }
    if let Some(ceiling) = outcomes.iter().find(|o| o.mode == Mode::Ceiling) {
        let ratios: Vec<String> = outcomes
            .iter()
            .filter(|o| o.mode != Mode::Ceiling)
            .map(|o| format!("{} {:.0}%", o.label, 100.0 * o.rate() / ceiling.rate()))
            .collect();
        println!(
            "pipeline/ceiling  {} (ceiling {} events/s)",
            ratios.join(", "),
            count(ceiling.rate().round() as u64)
        );
    }
    match machine::memory_kib() {
        Some((rss, hwm)) => println!(
            "memory     VmRSS {:.1} MiB, VmHWM {:.1} MiB (this process, after sending {} events)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
            count(bench.args.warmup + outcomes.iter().map(|o| o.sent.accepted).sum::<u64>())
        ),
        None => println!("memory     unknown (no /proc/self/status)"),
    }
    flush();
}

/// The figures of the `slow-clients` mode.
pub(super) fn slow_clients(
    label: &str,
    http: &awfdrs_config::HttpConfig,
    f: &super::slow::Figures,
) {
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let [p50, p95, p99, max] = percentiles(Some(&f.good));
    let statuses: Vec<String> = f
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {}", count(*n)))
        .collect();
    println!();
    println!("{label}, {:.0} s", f.seconds);
    println!(
        "  gateway limits  header {} ms, body {} ms, idle {} ms; {} connections, {} requests, \
         {} unauthenticated bodies of at most {} KiB (batch)",
        http.header_read_timeout_ms,
        http.body_read_timeout_ms,
        http.idle_timeout_ms,
        http.max_connections,
        http.max_concurrent_requests,
        http.max_unauthenticated_bodies,
        http.webhook_batch_body_limit_bytes / 1024,
    );
    println!(
        "  resident memory before {}, peak {} (VmHWM {})",
        mib(f.baseline_kib),
        mib(f.peak_kib),
        mib(f.hwm_kib)
    );
    println!(
        "  good requests   {} ({:.0}/s; {}); ms p50 {p50}  p95 {p95}  p99 {p99}  max {max}",
        count(f.good.len()),
        f.good.len() as f64 / f.seconds.max(1e-6),
        statuses.join(", ")
    );
    println!(
        "  hostile         {} connections opened, {} closed by the gateway",
        count(f.hostile_connections),
        count(f.hostile_dropped)
    );
    flush();
}

/// The figures of an analysis mode.
pub(super) fn analysis(
    label: &str,
    analyzer: &awfdrs_config::AnalyzerConfig,
    f: &super::analysis::Figures,
) {
    let [p50, p95, p99, max] = percentiles(Some(&f.latency));
    println!();
    println!("{label}");
    println!(
        "  past       {} resolved incidents of the tenant, {} of all tenants in the database \
         (written and analyzed in {:.1} s)",
        count(f.past),
        count(f.in_database),
        f.seeding.as_secs_f64()
    );
    println!(
        "  sent       {} failures, each opening a new incident, in {:.2} s ({}/s)",
        count(f.sent),
        f.sending.as_secs_f64(),
        count((f.sent as f64 / f.sending.as_secs_f64().max(1e-6)).round() as u64)
    );
    println!(
        "  analysed   {} incidents, {}/s from the first decision to the last ({:.2} s); \
         analyzer batches of up to {}, {} candidates per kind of similar incident",
        count(f.decided),
        count(f.rate().round() as u64),
        f.deciding.as_secs_f64(),
        analyzer.batch_size,
        analyzer.similar_candidates
    );
    println!(
        "  opened -> decided  ms p50 {p50}  p95 {p95}  p99 {p99}  max {max}  (incident's \
         transaction to its decision's transaction)"
    );
    match f.memory_kib {
        Some((rss, hwm)) => println!(
            "  memory     VmRSS {:.1} MiB, VmHWM {:.1} MiB (this process: load, detector and \
             analyzer)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
        None => println!("  memory     unknown (no /proc/self/status)"),
    }
    flush();
}
