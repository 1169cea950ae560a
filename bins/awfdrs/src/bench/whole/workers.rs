//! The loop mode's workers, each a child process: this binary's
//! `awfdrs worker <name>` with the bench's environment and the mode's
//! settings on top (database, namespace, rules, secrets key, an operations
//! port of its own), its output in a log file; waited for until its
//! `/api/v1/ready` answers; its CPU time and resident memory sampled from
//! `/proc` while the load runs; stopped with SIGTERM (killed if it does not
//! stop, or when dropped).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use super::super::machine::{cpu_ms_of, memory_kib_of};

/// The workers of the loop, in the order of events through it.
pub(super) const WORKERS: [&str; 5] = [
    "detector",
    "analyzer",
    "coordinator",
    "scheduler",
    "notifier",
];

/// How long a worker may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// One running worker and what was sampled of it.
pub(super) struct Worker {
    pub name: &'static str,
    /// Its number among the processes of its kind, from 1.
    pub index: usize,
    child: Child,
    pid: u32,
    ops: String,
    pub log: PathBuf,
    /// CPU ms when the load started, and the last sample.
    cpu_start: Option<u64>,
    cpu_last: Option<u64>,
    /// The highest `VmRSS` sampled and the last `VmHWM`, in KiB.
    rss_peak: u64,
    hwm: u64,
}

/// What one worker used during the load.
#[derive(Debug, Clone)]
pub struct WorkerUse {
    pub name: &'static str,
    pub index: usize,
    /// CPU time from the load's start to its end, in ms.
    pub cpu_ms: u64,
    /// Peak resident memory (`VmHWM`, else the highest `VmRSS` sampled), KiB.
    pub peak_kib: u64,
}

impl Worker {
    /// Spawns `awfdrs worker <name>` with `env` on top of this process's
    /// environment, its output appended to a log in `logs`.
    pub(super) fn spawn(
        name: &'static str,
        index: usize,
        env: &[(String, String)],
        logs: &Path,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let ops = format!("127.0.0.1:{port}");
        let log = logs.join(format!("{name}-{index}.log"));
        let out = std::fs::File::create(&log)
            .with_context(|| format!("creating the worker log {}", log.display()))?;
        let err = out.try_clone()?;
        let exe = std::env::current_exe().context("finding this program to run its workers")?;
        let child = Command::new(exe)
            .args(["worker", name])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWFDRS__TELEMETRY__METRICS_ADDR", &ops)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting worker {name}"))?;
        let pid = child
            .id()
            .with_context(|| format!("worker {name} exited at once"))?;
        Ok(Self {
            name,
            index,
            child,
            pid,
            ops: format!("http://{ops}"),
            log,
            cpu_start: None,
            cpu_last: None,
            rss_peak: 0,
            hwm: 0,
        })
    }

    /// Waits until the worker's `/api/v1/ready` answers 200.
    ///
    /// # Errors
    /// When it exits first or is not ready in time, pointing at its log.
    pub(super) async fn ready(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("{}/api/v1/ready", self.ops);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "worker {} exited ({status}); see {}",
                    self.name,
                    self.log.display()
                );
            }
            let ready = http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "worker {} not ready within {READY_WITHIN:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Notes the CPU time at the start of the load.
    pub(super) fn start_load(&mut self) {
        self.cpu_start = cpu_ms_of(self.pid);
        self.sample();
    }

    /// Samples CPU time and memory.
    pub(super) fn sample(&mut self) {
        if let Some(cpu) = cpu_ms_of(self.pid) {
            self.cpu_last = Some(cpu);
        }
        if let Some((rss, hwm)) = memory_kib_of(self.pid) {
            self.rss_peak = self.rss_peak.max(rss);
            self.hwm = self.hwm.max(hwm);
        }
    }

    /// Whether it has exited, and how.
    pub(super) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What it used since [`start_load`](Self::start_load).
    pub(super) fn usage(&self) -> WorkerUse {
        let cpu = match (self.cpu_start, self.cpu_last) {
            (Some(start), Some(last)) => last.saturating_sub(start),
            _ => 0,
        };
        WorkerUse {
            name: self.name,
            index: self.index,
            cpu_ms: cpu,
            peak_kib: self.hwm.max(self.rss_peak),
        }
    }

    /// Asks it to stop (SIGTERM) and waits for it, killing it after
    /// `grace`.
    pub(super) async fn stop(mut self, grace: Duration) {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "bench: worker {} did not stop within {grace:?}; killed",
                self.name
            );
            let _ = self.child.kill().await;
        }
    }
}

/// A free TCP port on loopback (bound, then released for a child to take).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}
