//! The real `awfdrs` binary as a child process: finding it, a port for it
//! to listen on, spawning it with a world's environment and waiting until
//! it is ready. [`Up`](crate::Up) and [`Served`](crate::Served) share these.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use awfdrs_config::Env;

/// The built `awfdrs` binary (`AWFDRS_BIN`, else next to the test binary).
pub fn awfdrs_bin() -> PathBuf {
    if let Ok(p) = std::env::var("AWFDRS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("awfdrs");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build --bin awfdrs) or set AWFDRS_BIN",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1 (bound, then released for a child to take).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// `awfdrs ARGS` with exactly `env` (and the test's `PATH`), stdout and
/// stderr into `log`, killed when dropped; the caller adds what else it
/// needs and spawns it.
pub(crate) fn command(args: &[&str], env: &Env, log: std::fs::File) -> tokio::process::Command {
    let err = log.try_clone().unwrap();
    let mut command = tokio::process::Command::new(awfdrs_bin());
    command
        .args(args)
        .env_clear()
        .envs(env)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true);
    command
}

/// Why a child did not become ready.
pub(crate) enum NotReady {
    /// It exited first, so.
    Exited(ExitStatus),
    /// It was still running, not ready, when the time was up.
    Late,
}

/// Polls `GET <base>/api/v1/ready` with `http` until it answers 200,
/// giving up when `child` exits or `within` passes.
pub(crate) async fn wait_ready(
    child: &mut tokio::process::Child,
    http: &reqwest::Client,
    base: &str,
    within: Duration,
) -> Result<(), NotReady> {
    let url = format!("{base}/api/v1/ready");
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(NotReady::Exited(status));
        }
        let ready = http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200);
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NotReady::Late);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `awfdrs ARGS` against `world`'s database and NATS; its stdout, after
/// checking that it succeeded.
pub async fn cli(world: &crate::World, args: &[&str]) -> String {
    let out = tokio::process::Command::new(awfdrs_bin())
        .args(args)
        .env_clear()
        .envs(world.env(&[]))
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("run awfdrs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "awfdrs {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
