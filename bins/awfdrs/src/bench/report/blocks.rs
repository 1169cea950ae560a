//! The printouts of the slow-clients and analysis modes.

use std::fmt::Write as _;

use super::model::Percentiles;
use super::{count, percentiles};

/// The figures of the `slow-clients` mode.
pub(in crate::bench) fn slow_clients(
    label: &str,
    http: &awfdrs_config::HttpConfig,
    f: &super::super::slow::Figures,
) -> String {
    let mut out = String::new();
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let [p50, p95, p99, max] = percentiles(Percentiles::of(&f.good));
    let statuses: Vec<String> = f
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {}", count(*n)))
        .collect();
    let _ = writeln!(out);
    let _ = writeln!(out, "{label}, {:.0} s", f.seconds);
    let _ = writeln!(
        out,
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
    let _ = writeln!(
        out,
        "  resident memory before {}, peak {} (VmHWM {})",
        mib(f.baseline_kib),
        mib(f.peak_kib),
        mib(f.hwm_kib)
    );
    let _ = writeln!(
        out,
        "  good requests   {} ({:.0}/s; {}); ms p50 {p50}  p95 {p95}  p99 {p99}  max {max}",
        count(f.good.len()),
        f.good.len() as f64 / f.seconds.max(1e-6),
        statuses.join(", ")
    );
    let _ = writeln!(
        out,
        "  hostile         {} connections opened, {} closed by the gateway",
        count(f.hostile_connections),
        count(f.hostile_dropped)
    );
    out
}

/// The figures of an analysis mode.
pub(in crate::bench) fn analysis(
    label: &str,
    analyzer: &awfdrs_config::AnalyzerConfig,
    f: &super::super::analysis::Figures,
) -> String {
    let mut out = String::new();
    let [p50, p95, p99, max] = percentiles(Percentiles::of(&f.latency));
    let _ = writeln!(out);
    let _ = writeln!(out, "{label}");
    let _ = writeln!(
        out,
        "  past       {} resolved incidents of the tenant, {} of all tenants in the database \
         (written and analyzed in {:.1} s)",
        count(f.past),
        count(f.in_database),
        f.seeding.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  sent       {} failures, each opening a new incident, in {:.2} s ({}/s)",
        count(f.sent),
        f.sending.as_secs_f64(),
        count((f.sent as f64 / f.sending.as_secs_f64().max(1e-6)).round() as u64)
    );
    let _ = writeln!(
        out,
        "  analysed   {} incidents, {}/s from the first decision to the last ({:.2} s); \
         analyzer batches of up to {}, {} candidates per kind of similar incident",
        count(f.decided),
        count(f.rate().round() as u64),
        f.deciding.as_secs_f64(),
        analyzer.batch_size,
        analyzer.similar_candidates
    );
    let _ = writeln!(
        out,
        "  opened -> decided  ms p50 {p50}  p95 {p95}  p99 {p99}  max {max}  (incident's \
         transaction to its decision's transaction)"
    );
    let _ = match f.memory_kib {
        Some((rss, hwm)) => writeln!(
            out,
            "  memory     VmRSS {:.1} MiB, VmHWM {:.1} MiB (this process: load, detector and \
             analyzer)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
        None => writeln!(out, "  memory     unknown (no /proc/self/status)"),
    };
    out
}
