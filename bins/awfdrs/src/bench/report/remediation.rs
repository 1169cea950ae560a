//! The printout of the remediation modes: the rules they ran under, what
//! was written, and the latency, lateness and rates measured.

use hdrhistogram::Histogram;

use std::fmt::Write as _;

use super::model::Percentiles;
use super::{count, percentiles};

pub(super) fn percentile_line(h: &Histogram<u64>) -> String {
    let [p50, p95, p99, max] = percentiles(Percentiles::of(h));
    format!("ms p50 {p50}  p95 {p95}  p99 {p99}  max {max}")
}

pub(super) fn memory_line(memory_kib: Option<(u64, u64)>, what: &str) -> String {
    match memory_kib {
        Some((rss, hwm)) => format!(
            "  memory     VmRSS {:.1} MiB, VmHWM {:.1} MiB ({what})",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
        None => "  memory     unknown (no /proc/self/status)".to_owned(),
    }
}

/// The figures of a remediation mode.
pub(in crate::bench) fn remediation(
    label: &str,
    coordinator: &awfdrs_config::CoordinatorConfig,
    f: &super::super::remediation::Figures,
) -> String {
    let mut out = String::new();
    use super::super::remediation::per_second;
    let kinds: Vec<String> = f
        .actions
        .iter()
        .map(|(k, n)| format!("{k} {}", count(*n)))
        .collect();
    let _ = writeln!(out);
    let _ = writeln!(out, "{label}");
    let _ = writeln!(
        out,
        "  rules      {}",
        super::super::remediation::RULES_SUMMARY
    );
    let _ = writeln!(
        out,
        "  seeded     {} incidents, each of its own workflow with one failure and its recorded \
         decision (written and vacuumed in {:.1} s)",
        count(f.decisions),
        f.seeding.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  published  {} decisions in {:.2} s ({}/s)",
        count(f.decisions),
        f.publishing.as_secs_f64(),
        count((f.decisions as f64 / f.publishing.as_secs_f64().max(1e-6)).round() as u64)
    );
    let _ = writeln!(
        out,
        "  actions    {} recorded ({}), {}/s from the first to the last ({:.2} s); {} paced by \
         a rate limit; coordinator batches of up to {}",
        count(f.recorded),
        kinds.join(", "),
        count(per_second(f.recorded, f.recording).round() as u64),
        f.recording.as_secs_f64(),
        count(f.paced),
        coordinator.batch_size
    );
    let _ = writeln!(
        out,
        "  commands   {} retry commands received, {}/s from the first to the last ({:.2} s); \
         {} repeated",
        count(f.commands),
        count(per_second(f.commands, f.commanding).round() as u64),
        f.commanding.as_secs_f64(),
        count(f.repeated)
    );
    let _ = writeln!(
        out,
        "  decision published -> retry command received  {}",
        percentile_line(&f.latency)
    );
    let _ = writeln!(
        out,
        "    published -> action's transaction        {}",
        percentile_line(&f.to_action)
    );
    let _ = writeln!(
        out,
        "    action's transaction -> scheduler's round  {}  (with the policy's 1 ms)",
        percentile_line(&f.to_fired)
    );
    let _ = writeln!(
        out,
        "{}",
        memory_line(
            f.memory_kib,
            "this process: load, coordinator, scheduler, relays"
        )
    );
    out
}

/// The figures of the `scheduler` mode.
pub(in crate::bench) fn scheduler(
    label: &str,
    scheduler: &awfdrs_config::SchedulerConfig,
    f: &super::super::remediation::SchedulerFigures,
) -> String {
    let mut out = String::new();
    use super::super::remediation::per_second;
    let _ = writeln!(out);
    let _ = writeln!(out, "{label}");
    let _ = writeln!(
        out,
        "  seeded     {} incidents, each with its first retry SCHEDULED (written and vacuumed \
         in {:.1} s); the first due {:.2} s after the schedule committed",
        count(f.scheduled),
        f.seeding.as_secs_f64(),
        f.lead.num_milliseconds() as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "  fired      {} retries, {}/s from the first to the last ({:.2} s); batches of up to \
         {}; {} fired before they were due",
        count(f.fired),
        count(per_second(f.fired, f.firing).round() as u64),
        f.firing.as_secs_f64(),
        scheduler.batch_size,
        count(f.early)
    );
    let _ = writeln!(
        out,
        "  lateness   {}  (fired_at - due_at: the round that fired it)",
        percentile_line(&f.lateness)
    );
    let _ = writeln!(
        out,
        "  arrival    {}  (due_at -> its retry command received)",
        percentile_line(&f.arrival)
    );
    let _ = writeln!(
        out,
        "  commands   {} received, {} repeated",
        count(f.commands),
        count(f.repeated)
    );
    let _ = writeln!(
        out,
        "{}",
        memory_line(
            f.memory_kib,
            "this process: schedulers, their relays, the subscriber"
        )
    );
    out
}
