//! What the machine did during a mode, from `/proc`: CPU time by process
//! (this one, PostgreSQL's, nats-server's, the rest), this process's
//! memory, and a child's CPU time and memory. Linux only; elsewhere the
//! figures are absent.

use std::collections::BTreeMap;
use std::time::Instant;

/// Clock ticks per second of `/proc` CPU times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time so far, by process group, and of the whole machine.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    ticks: BTreeMap<&'static str, u64>,
    machine_busy: u64,
}

/// Cores used on average between two snapshots, by process group.
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    pub by_group: Vec<(&'static str, f64)>,
    pub machine: f64,
    /// The time between the two snapshots.
    pub seconds: f64,
}

/// The process groups, in the order they are printed.
pub const GROUPS: [&str; 4] = ["awfdrs", "postgres", "nats", OTHER];
/// The rest of the machine.
const OTHER: &str = "other";

impl CpuSnapshot {
    /// Reads every process's CPU time.
    pub fn take() -> Self {
        let own = std::process::id().to_string();
        let mut ticks: BTreeMap<&'static str, u64> = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name
                    .to_str()
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                let Some((comm, used)) = parse_stat(&stat) else {
                    continue;
                };
                let group = if pid == own {
                    "awfdrs"
                } else if comm == "postgres" {
                    "postgres"
                } else if comm.starts_with("nats-server") {
                    "nats"
                } else {
                    continue;
                };
                *ticks.entry(group).or_default() += used;
            }
        }
        let machine_busy = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().next().map(machine_busy))
            .unwrap_or(0);
        Self {
            at: Instant::now(),
            ticks,
            machine_busy,
        }
    }

    /// Cores used since `earlier`.
    pub fn since(&self, earlier: &Self) -> CpuUse {
        let secs = self.at.duration_since(earlier.at).as_secs_f64().max(1e-3);
        let cores = |now: u64, then: u64| now.saturating_sub(then) as f64 / TICKS_PER_SECOND / secs;
        let machine = cores(self.machine_busy, earlier.machine_busy);
        let mut by_group: Vec<(&'static str, f64)> = GROUPS
            .iter()
            .filter(|g| **g != OTHER)
            .map(|g| {
                let now = self.ticks.get(g).copied().unwrap_or(0);
                let then = earlier.ticks.get(g).copied().unwrap_or(0);
                (*g, cores(now, then))
            })
            .collect();
        // Whatever the named processes did not use: other processes, also
        // those that came and went in between, and the kernel.
        let named: f64 = by_group.iter().map(|(_, c)| c).sum();
        by_group.push((OTHER, (machine - named).max(0.0)));
        CpuUse {
            by_group,
            machine,
            seconds: secs,
        }
    }
}

/// `(comm, utime + stime)` of a `/proc/<pid>/stat` line.
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // After the command: state (field 3), …, utime (14), stime (15).
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Busy ticks of the `cpu` line of `/proc/stat` (all but idle and iowait).
fn machine_busy(line: &str) -> u64 {
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    total.saturating_sub(idle)
}

/// `(VmRSS, VmHWM)` of this process in KiB.
pub fn memory_kib() -> Option<(u64, u64)> {
    memory_kib_in("/proc/self/status")
}

/// `(VmRSS, VmHWM)` of process `pid` in KiB.
pub fn memory_kib_of(pid: u32) -> Option<(u64, u64)> {
    memory_kib_in(&format!("/proc/{pid}/status"))
}

/// CPU time (user and system) of process `pid` so far, in milliseconds.
pub fn cpu_ms_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, ticks) = parse_stat(&stat)?;
    Some((ticks as f64 * 1000.0 / TICKS_PER_SECOND) as u64)
}

fn memory_kib_in(path: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The kernel's release (`uname -r`).
pub fn kernel() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The number of CPUs this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_command_and_cpu_ticks() {
        let line = "2205 (postgres: 15/main: x (y)) S 1 2205 2205 0 -1 4194560 1 0 0 0 \
                    70 30 0 0 20 0 1 0 100 1 1 1";
        assert_eq!(parse_stat(line), Some(("postgres: 15/main: x (y)", 100)));
        assert_eq!(machine_busy("cpu  10 0 5 100 7 1 1 0 0 0"), 17);
    }
}
