//! The printout of the storm mode: the outage, the breaker opening on its
//! own, the retries held and none fired into the open breaker, the probes
//! of each half-open span, the retries paced after the vendor came back,
//! every incident resolved, and each worker's CPU time and memory.

use std::fmt::Write as _;

use super::super::whole::storm::{self, StormFigures};
use super::count;
use super::remediation::percentile_line;
use super::whole::workers;

fn secs(d: Option<std::time::Duration>) -> String {
    d.map_or_else(
        || "never".to_owned(),
        |d| format!("{:.2} s", d.as_secs_f64()),
    )
}

pub(in crate::bench) fn storm(label: &str, f: &StormFigures) -> String {
    let mut out = String::new();
    let p = &f.progress;
    let _ = writeln!(out);
    let _ = writeln!(out, "{label}");
    let _ = writeln!(out, "  rules      {}", storm::SUMMARY);
    let _ = writeln!(
        out,
        "  outage     {} failures published in {:.2} s; the breaker opened {} after the first \
         ({} transitions in all)",
        count(f.sent.accepted),
        f.sent.elapsed.as_secs_f64(),
        secs(f.opened_after),
        f.transitions
    );
    let _ = writeln!(
        out,
        "  held       {} retries held, {} not ended; {} retries fired, {} into an open breaker, \
         at most {} in one half-open span ({} probes, {} successes to close)",
        count(u64::try_from(p.holds).unwrap_or(0)),
        count(u64::try_from(p.holds_open).unwrap_or(0)),
        count(u64::try_from(p.fired).unwrap_or(0)),
        count(f.into_open),
        f.most_half_open,
        storm::PROBES,
        storm::SUCCESSES_TO_CLOSE
    );
    let _ = writeln!(
        out,
        "  recovery   the vendor back {:.2} s after the first failure (every incident acted on); \
         the breaker closed {} later; {} of {} incidents resolved {:.2} s later",
        f.outage.as_secs_f64(),
        secs(f.to_closed),
        count(u64::try_from(p.resolved).unwrap_or(0)),
        count(u64::try_from(p.incidents).unwrap_or(0)),
        f.to_resolved.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  paced      {} retries after the breaker closed, over {:.2} s: {:.1}/s beyond the burst \
         against a limit of {:.0}/s (burst {}); at most {} within any second",
        count(f.after_close),
        f.after_close_span.as_secs_f64(),
        f.paced_rate(),
        storm::RATE,
        storm::BURST,
        f.most_in_a_second
    );
    let _ = writeln!(
        out,
        "  commands   {} retry commands received, {} repeated, {} unreadable; {} outcomes \
         published, {} failed",
        count(f.commands),
        count(f.repeated_commands),
        count(f.unreadable_commands),
        count(f.outcomes),
        count(f.outcomes_failed)
    );
    let _ = writeln!(
        out,
        "  released   vendor back -> retry fired    {}",
        percentile_line(&f.released)
    );
    workers(&mut out, &f.workers, f.runs, "run");
    out
}
