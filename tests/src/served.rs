//! The real `awfdrs` binary serving HTTP as a child process, ready before
//! the test goes on.

use std::path::PathBuf;
use std::time::Duration;

use crate::process::{NotReady, command, wait_ready};
use crate::{World, free_port};

/// The real `awfdrs up` (or `worker gateway`) as a child process in a
/// world, listening on a free port, its output in a log file shown when
/// something goes wrong.
#[derive(Debug)]
pub struct Served {
    pub child: tokio::process::Child,
    /// `host:port` of the gateway.
    pub addr: String,
    /// `http://host:port`.
    pub base: String,
    /// Where the process's output goes.
    pub log: PathBuf,
}

impl Served {
    /// Spawns `awfdrs up` with `world`'s environment plus `extra`, and waits
    /// until `GET /api/v1/ready` answers 200.
    pub async fn start(world: &World, extra: &[(&str, &str)]) -> Self {
        Self::start_args(world, extra, &["up"]).await
    }

    /// Spawns `awfdrs ARGS` (a process that serves HTTP: `up`, `worker
    /// gateway`) like [`Served::start`].
    pub async fn start_args(world: &World, extra: &[(&str, &str)], args: &[&str]) -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("awfdrs-{}-{port}.log", world.namespace));
        let out = std::fs::File::create(&log).expect("create the log file");
        let mut env = world.env(extra);
        env.insert("AWFDRS_HTTP_ADDR".into(), addr.clone());
        let child = command(args, &env, out)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("spawn awfdrs");
        let mut up = Self {
            child,
            base: format!("http://{addr}"),
            addr,
            log,
        };
        up.wait_ready(Duration::from_secs(60)).await;
        up
    }

    /// The last 80 lines of the process's output so far.
    pub fn output(&self) -> String {
        let all = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    async fn wait_ready(&mut self, within: Duration) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        match wait_ready(&mut self.child, &http, &self.base, within).await {
            Ok(()) => {}
            Err(NotReady::Exited(status)) => {
                panic!("awfdrs exited ({status}) before ready:\n{}", self.output())
            }
            Err(NotReady::Late) => panic!("awfdrs not ready within {within:?}:\n{}", self.output()),
        }
    }

    /// Kills the process and removes its log.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let _ = std::fs::remove_file(&self.log);
    }
}
