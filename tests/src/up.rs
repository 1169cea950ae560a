//! `awfdrs up` as a child process that a fault test may kill and restart.

use std::path::PathBuf;
use std::time::Duration;

use awfdrs_config::Env;

use crate::free_port;
use crate::process::{NotReady, command, wait_ready};

/// `awfdrs up` run as the real binary: gateway and workers in one child
/// process, its output appended to a log file that survives restarts.
#[derive(Debug)]
pub struct Up {
    child: tokio::process::Child,
    env: Env,
    /// `http://127.0.0.1:<port>` of the gateway.
    pub base: String,
    /// Where stdout and stderr of every run go.
    pub log: PathBuf,
    http: reqwest::Client,
}

impl Up {
    /// Spawns `awfdrs up` with `env` (a world's, see [`World::env`](crate::World::env)) on a
    /// free port; does not wait for it to be ready.
    pub fn spawn(mut env: Env, log: PathBuf) -> Self {
        let port = free_port();
        env.insert("AWFDRS_HTTP_ADDR".into(), format!("127.0.0.1:{port}"));
        let child = Self::start(&env, &log);
        Self {
            child,
            env,
            base: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap(),
        }
    }

    fn start(env: &Env, log: &PathBuf) -> tokio::process::Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the log file");
        command(&["up"], env, out)
            .env(
                "RUST_LOG",
                std::env::var("AWFDRS_TEST_LOG").unwrap_or("info".into()),
            )
            .env("NO_COLOR", "1")
            .spawn()
            .expect("spawn awfdrs up")
    }

    /// The child's process id, None once it has exited.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Whether the process is still running (it did not exit or crash).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How the process ended, if it did.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The status of `GET /api/v1/ready`, None without an answer within 3 s.
    pub async fn ready_status(&self) -> Option<u16> {
        self.ready().await.map(|(s, _)| s)
    }

    /// The status and body of `GET /api/v1/ready`, None without an answer
    /// within 3 s.
    pub async fn ready(&self) -> Option<(u16, String)> {
        let r = self
            .http
            .get(format!("{}/api/v1/ready", self.base))
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.unwrap_or_default()))
    }

    /// Waits until `/ready` answers 200, failing after `within` or when the
    /// process exits.
    pub async fn wait_ready(&mut self, within: Duration) {
        match wait_ready(&mut self.child, &self.http, &self.base, within).await {
            Ok(()) => {}
            Err(NotReady::Exited(status)) => panic!(
                "awfdrs up exited ({status}) before it was ready; log: {}",
                self.log.display()
            ),
            Err(NotReady::Late) => panic!(
                "awfdrs up not ready within {within:?}; log: {}",
                self.log.display()
            ),
        }
    }

    /// Waits until `/ready` answers 200: true, or false when `within`
    /// passes or the process exits first.
    pub async fn try_ready(&mut self, within: Duration) -> bool {
        wait_ready(&mut self.child, &self.http, &self.base, within)
            .await
            .is_ok()
    }

    /// SIGKILLs the process and reaps it.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Starts the process again (same port, same environment) after a kill
    /// or a crash.
    pub fn restart(&mut self) {
        self.child = Self::start(&self.env, &self.log);
    }
}
