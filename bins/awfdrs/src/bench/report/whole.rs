//! The printout of a loop mode: what was sent and stored, the correctness
//! checks (every event stored once, one decision and one action per
//! incident, every retry command and notification once), the rates, each
//! hop's latency, each worker's CPU time and peak resident memory, and the
//! rate against the run with fewer processes.

use super::remediation::percentile_line;
use std::fmt::Write as _;

use super::count;

/// Resident memory each worker is meant to stay under, in MiB.
const WORKER_MIB: f64 = 40.0;

/// The figures of a loop mode; `before` holds the rates of the loop modes
/// run before it, with their processes of each worker.
pub(in crate::bench) fn whole_loop(
    label: &str,
    f: &super::super::whole::Figures,
    before: &[(usize, f64)],
) -> String {
    let mut out = String::new();
    let t = &f.tally;
    let refused: u64 = f.sent.refused.values().sum();
    let _ = writeln!(out);
    let _ = writeln!(out, "{label}");
    let _ = writeln!(
        out,
        "  rules      3 codes of 5 retried by policy bench_now (fixed 1 ms), 2 permanent \
         (escalated to one webhook channel on a local receiver); limits far above the load"
    );
    let _ = writeln!(
        out,
        "  sent       {} events in {:.2} s ({}/s), {} refused{}",
        count(f.sent.accepted),
        f.sent.elapsed.as_secs_f64(),
        count((f.sent.accepted as f64 / f.sent.elapsed.as_secs_f64().max(1e-6)).round() as u64),
        count(refused),
        if f.sent.cut_short {
            " (cut short at --max-seconds)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "  stored     {} events ({} failures), each once: {}; {} incidents of {} signatures, \
         their event counts summing to {}",
        count(u64::try_from(t.events).unwrap_or(0)),
        count(u64::try_from(t.failures).unwrap_or(0)),
        yes(u64::try_from(t.events).unwrap_or(0) == f.sent.accepted
            && t.incident_events == t.failures),
        count(u64::try_from(t.incidents).unwrap_or(0)),
        count(f.expected_incidents),
        count(u64::try_from(t.incident_events).unwrap_or(0)),
    );
    let _ = writeln!(
        out,
        "  decided    {} incidents with other than one decision, {} with other than one action",
        count(f.odd_decisions),
        count(f.odd_actions)
    );
    let _ = writeln!(
        out,
        "  retried    {} retries fired of {}; {} retry commands received, {} repeated",
        count(f.fired),
        count(f.expected_retries),
        count(f.commands),
        count(f.repeated_commands)
    );
    let escalated = f.expected_incidents.saturating_sub(f.expected_retries);
    let _ = writeln!(
        out,
        "  notified   {} notifications of {} escalations, {} delivered in {} tries; {} received, \
         {} repeated webhook-ids, {} unverified",
        count(f.notifications),
        count(escalated),
        count(f.delivered),
        count(f.tries),
        count(f.received),
        count(f.repeated_notifications),
        count(f.unverified)
    );
    let _ = writeln!(
        out,
        "  rate       {} events stored/s (first due -> last commit, {:.2} s); the whole loop \
         done {:.2} s after the first event",
        count(f.rate().round() as u64),
        f.storing.as_secs_f64(),
        f.looping.as_secs_f64()
    );
    for (what, h) in [
        ("event published -> committed            ", &f.committed),
        ("incident opened -> decision recorded    ", &f.analysed),
        ("decision recorded -> action recorded    ", &f.actioned),
        ("action recorded -> retry command fired  ", &f.retried),
        ("escalation -> notification delivered    ", &f.notified),
        ("first failure -> retry command fired    ", &f.to_retry),
        (
            "first failure -> notification delivered ",
            &f.to_notification,
        ),
    ] {
        let _ = writeln!(out, "  {what} {}", percentile_line(h));
    }
    workers(&mut out, &f.workers, f.sent.accepted, "event");
    for (processes, rate) in before {
        let _ = writeln!(
            out,
            "  scale-out  {} events stored/s with {} process{} of each worker vs {} with {}: \
             x{:.2}",
            count(f.rate().round() as u64),
            f.processes,
            if f.processes == 1 { "" } else { "es" },
            count(rate.round() as u64),
            processes,
            f.rate() / rate.max(1e-6)
        );
    }
    out
}

/// A line per worker (peak resident memory, CPU time and its share per
/// `unit`), and whether every one stayed under [`WORKER_MIB`].
pub(super) fn workers(
    out: &mut String,
    workers: &[super::super::whole::WorkerUse],
    units: u64,
    unit: &str,
) {
    let units = units.max(1) as f64;
    let mut largest = (0.0_f64, String::new());
    for w in workers {
        let mib = w.peak_kib as f64 / 1024.0;
        let name = format!("{} #{}", w.name, w.index);
        let _ = writeln!(
            out,
            "  worker     {name:<14} peak RSS {mib:>6.1} MiB  CPU {:>7} ms  {:.3} ms/{unit}",
            count(w.cpu_ms),
            w.cpu_ms as f64 / units
        );
        if mib > largest.0 {
            largest = (mib, name);
        }
    }
    let _ = writeln!(
        out,
        "  memory     every worker under {WORKER_MIB:.0} MiB resident: {} (largest {} at {:.1} MiB)",
        yes(largest.0 < WORKER_MIB),
        largest.1,
        largest.0
    );
}

pub(super) fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}
