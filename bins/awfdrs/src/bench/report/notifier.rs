//! The printout of the notifier mode: what was written and published, the
//! notifications received and recorded, their rate and latency.

use super::remediation::{memory_line, percentile_line};
use std::fmt::Write as _;

use super::count;

/// The figures of the `notifier` mode.
pub(in crate::bench) fn notifier(
    label: &str,
    notifications: &awfdrs_config::NotificationsConfig,
    f: &super::super::notifier::Figures,
) -> String {
    let mut out = String::new();
    use super::super::remediation::per_second;
    let channels: Vec<String> = super::super::notifier::CHANNELS
        .iter()
        .map(|(name, kind)| format!("{name} ({kind})"))
        .collect();
    let recorded: Vec<String> = f
        .outcomes
        .iter()
        .map(|o| {
            format!(
                "{} {} in {} tries",
                o.status,
                count(u64::try_from(o.notifications).unwrap_or(0)),
                count(u64::try_from(o.tries).unwrap_or(0))
            )
        })
        .collect();
    let _ = writeln!(out);
    let _ = writeln!(out, "{label}");
    let _ = writeln!(
        out,
        "  seeded     {} incidents with their recorded decisions, and level 1 channels {} on \
         local receivers (written and vacuumed in {:.1} s)",
        count(f.escalations),
        channels.join(", "),
        f.seeding.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "  published  {} escalations in {:.2} s ({}/s)",
        count(f.escalations),
        f.publishing.as_secs_f64(),
        count((f.escalations as f64 / f.publishing.as_secs_f64().max(1e-6)).round() as u64)
    );
    let _ = writeln!(
        out,
        "  received   {} notifications of {}, {}/s from the first to the last ({:.2} s); {} \
         repeated webhook-ids, {} not ours, {} unverified signatures",
        count(f.received),
        count(f.expected),
        count(per_second(f.received, f.receiving).round() as u64),
        f.receiving.as_secs_f64(),
        count(f.repeated),
        count(f.unknown),
        count(f.unverified)
    );
    let _ = writeln!(
        out,
        "  recorded   {}; notifier batches of up to {}",
        recorded.join(", "),
        notifications.batch_size
    );
    let _ = writeln!(
        out,
        "  escalation published -> notification received  {}",
        percentile_line(&f.latency)
    );
    let _ = writeln!(
        out,
        "{}",
        memory_line(f.memory_kib, "this process: load, notifier, receivers")
    );
    out
}
