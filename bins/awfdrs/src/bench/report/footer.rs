//! The table's sections after the ingestion modes: the load side, where
//! the time went, CPU per event, what was persisted, the ratios to the
//! ceiling and memory.

use super::model::{ModeReport, Report};
use super::{GROUPS, count, flush, ms, percentiles};

pub(super) fn footer(r: &Report) {
    let modes: Vec<&ModeReport> = r.modes.iter().filter(|m| m.ingestion.is_some()).collect();
    println!();
    println!(
        "{:<22} {:>8} {:>8} {:>9}   {:>7} {:>7} {:>7} {:>7}  (HTTP requests, client side)",
        "load side", "accepted", "seconds", "sent/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for (m, i) in modes
        .iter()
        .filter_map(|m| Some((m, m.ingestion.as_ref()?)))
    {
        let [p50, p95, p99, max] = percentiles(i.requests_ms);
        println!(
            "{:<22} {:>8} {:>8.2} {:>9}   {p50:>7} {p95:>7} {p99:>7} {max:>7}",
            m.label,
            count(i.accepted),
            i.send_seconds,
            count((i.accepted as f64 / i.send_seconds.max(1e-6)).round() as u64),
        );
        if i.cut_short {
            println!(
                "{:<22} cut short: stopped sending after the time budget (--max-seconds)",
                ""
            );
        }
        if !i.refused.is_empty() {
            let refused: Vec<String> = i
                .refused
                .iter()
                .map(|(status, n)| format!("{} x {status}", count(*n)))
                .collect();
            println!(
                "{:<22} refused: {} (first: {})",
                "",
                refused.join(", "),
                i.first_error.as_deref().unwrap_or("?")
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
    for (m, i) in modes
        .iter()
        .filter_map(|m| Some((m, m.ingestion.as_ref()?)))
    {
        let to_tx = i.to_tx_ms.map_or_else(
            || "-".to_owned(),
            |p| format!("{}/{}", ms(p.p50), ms(p.p99)),
        );
        let cpu = m.cpu.as_ref();
        let cores: String = GROUPS
            .iter()
            .map(|g| {
                let c = cpu.and_then(|c| c.cores.get(g)).copied().unwrap_or(0.0);
                format!(" {c:>8.2}")
            })
            .collect();
        let tx = i
            .tx_ms
            .map_or_else(|| "-".to_owned(), |t| format!("{}", t.round() as u64));
        println!(
            "{:<22} {:>7} {:>5.0} {:>8.2} {tx:>5} {:>4.0}% {:>13}            {cores} {:>8.2}",
            m.label,
            count(i.batches),
            i.batch_size,
            i.batch_ms,
            100.0 * i.busy,
            to_tx,
            cpu.map_or(0.0, |c| c.machine_cores),
        );
    }
    println!(
        "  batch ms: handling one batch (decode, validate, transaction, acks; mean); tx ms: \
         start to seen commit of its transaction (mean, probe-late); busy: share of the mode's \
         time spent in batches; to tx: send -> start of the batch's transaction; cores: CPU used \
         (awfdrs = this process: load, gateway and detector; other = the rest of the machine)"
    );

    println!();
    println!("{:<22} {groups}", "cpu ms per event");
    for m in &modes {
        let per_event: String = GROUPS
            .iter()
            .map(|g| {
                let v = m
                    .cpu
                    .as_ref()
                    .and_then(|c| c.ms_per_event.get(g))
                    .copied()
                    .unwrap_or(0.0);
                format!(" {v:>8.3}")
            })
            .collect();
        println!("{:<22} {per_event}", m.label);
    }

    println!();
    for (m, i) in modes
        .iter()
        .filter_map(|m| Some((m, m.ingestion.as_ref()?)))
    {
        match &i.persisted {
            Some(t) => println!(
                "persisted  {:<22} {} of {} accepted events; {} failures counted in {} incidents \
                 (sum of event_count {}){}{}",
                m.label,
                count(u64::try_from(t.events).unwrap_or(0)),
                count(i.accepted),
                count(u64::try_from(t.failures).unwrap_or(0)),
                t.incidents,
                count(u64::try_from(t.incident_events).unwrap_or(0)),
                if t.held_back > 0 {
                    format!(
                        ", {} held back by open_after",
                        count(u64::try_from(t.held_back).unwrap_or(0))
                    )
                } else {
                    String::new()
                },
                if t.unseen_commits > 0 {
                    format!("; {} commits not seen by the probe", t.unseen_commits)
                } else {
                    String::new()
                },
            ),
            None => println!(
                "persisted  {:<22} {} of {} accepted messages in the bare table",
                m.label,
                count(m.count),
                count(i.accepted)
            ),
        }
    }
    let ratios: Vec<String> = modes
        .iter()
        .filter_map(|m| Some(format!("{} {:.0}%", m.label, 100.0 * m.of_ceiling?)))
        .collect();
    if let Some(ceiling) = modes.iter().find(|m| m.mode == "ceiling") {
        println!(
            "pipeline/ceiling  {} (ceiling {} events/s)",
            ratios.join(", "),
            count(ceiling.per_second.round() as u64)
        );
    }
    let sent = r.settings.warmup
        + modes
            .iter()
            .filter_map(|m| m.ingestion.as_ref())
            .map(|i| i.accepted)
            .sum::<u64>();
    match modes.last().and_then(|m| m.memory) {
        Some(mem) => println!(
            "memory     VmRSS {:.1} MiB, VmHWM {:.1} MiB (this process, after sending {} events)",
            mem.rss_mib,
            mem.hwm_mib,
            count(sent)
        ),
        None => println!("memory     unknown (no /proc/self/status)"),
    }
    flush();
}
