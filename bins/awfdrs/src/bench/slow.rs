//! The `slow-clients` mode: the real gateway and detector under slowloris
//! connections and stalled uploads, while well-behaved clients post
//! events; it prints this process's resident memory and the good
//! requests' latency.
//!
//! The hostile clients, each reconnecting `--reconnect-ms` after the
//! gateway drops or refuses it:
//!
//! * slowloris: a request head begun, then one header byte a second;
//! * stalled uploads announcing 8 MiB, in three kinds: without
//!   credentials; signed with a forged signature and chunked, sending just
//!   under the webhook cap (its body is read before the signature can be
//!   checked); signed with a declared length above the webhook cap. Each
//!   sends the start of its body and then stalls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use awfdrs_runtime::{Context, Harness};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::load::histogram;
use super::machine::memory_kib;
use super::{Bench, Mode};

/// How the hostile clients fared, for the report.
#[derive(Debug, Default)]
pub struct Hostile {
    pub connections: AtomicU64,
    pub dropped: AtomicU64,
}

/// What the mode measured.
#[derive(Debug)]
pub struct Figures {
    pub baseline_kib: u64,
    pub peak_kib: u64,
    pub hwm_kib: u64,
    pub good: hdrhistogram::Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub hostile_connections: u64,
    pub hostile_dropped: u64,
    pub seconds: f64,
}

const UPLOAD_BYTES: usize = 8 << 20;

/// The hostile load's shape.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub slowloris: usize,
    pub uploads: usize,
    pub good_clients: usize,
    pub duration: Duration,
    /// How long a dropped hostile client waits before it reconnects.
    pub reconnect: Duration,
}

impl Bench {
    /// The gateway and a detector in this process under hostile clients.
    pub(super) async fn slow_clients(&self) -> anyhow::Result<Figures> {
        let mode = Mode::SlowClients;
        let ctx = Context::connect(self.config_for(mode)).await?;
        ctx.bus.declare_streams().await?;
        let api_key = awfdrs_domain::new_api_key();
        ctx.store
            .create_tenant("bench-slowclients", &api_key)
            .await?;
        let shutdown = CancellationToken::new();
        let harness = Harness::start(ctx.clone(), shutdown.clone())?;
        awfdrs_detector::start(&harness).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = awfdrs_gateway::start_on(&harness, listener)?;
        let workers = tokio::spawn(harness.run());
        let a = &self.args;
        let shape = Shape {
            slowloris: a.slowloris,
            uploads: a.stalled_uploads,
            good_clients: a.good_clients.max(1),
            duration: Duration::from_secs(a.slow_seconds.max(1)),
            reconnect: Duration::from_millis(a.reconnect_ms),
        };
        let figures = run(addr, &api_key, shape).await;
        shutdown.cancel();
        super::stop_workers(workers).await;
        ctx.store.pool().close().await;
        figures
    }
}

/// Runs the hostile and the good clients against `addr` for `shape.duration`.
pub async fn run(addr: SocketAddr, api_key: &str, shape: Shape) -> anyhow::Result<Figures> {
    let stop = CancellationToken::new();
    let hostile = Arc::new(Hostile::default());
    let mut tasks = tokio::task::JoinSet::new();

    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(shape.good_clients)
        .build()?;
    // Warm the good clients' connections and the key cache.
    for i in 0..shape.good_clients {
        post(&http, &base, api_key, &format!("warm-{i}")).await?;
    }
    let baseline_kib = memory_kib().map_or(0, |m| m.0);

    for i in 0..shape.slowloris {
        tasks.spawn(slowloris(
            addr,
            hostile.clone(),
            stop.clone(),
            shape.reconnect,
            i,
        ));
    }
    for i in 0..shape.uploads {
        tasks.spawn(upload(
            addr,
            hostile.clone(),
            stop.clone(),
            shape.reconnect,
            i,
        ));
    }
    // Let the hostile clients take their places before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let started = Instant::now();
    let peak = Arc::new(AtomicU64::new(baseline_kib));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Some((rss, _)) = memory_kib() {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut good = tokio::task::JoinSet::new();
    for c in 0..shape.good_clients {
        let (http, base, key) = (http.clone(), base.clone(), api_key.to_owned());
        let deadline = started + shape.duration;
        good.spawn(async move {
            let mut hist = histogram();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let at = Instant::now();
                let status = post(&http, &base, &key, &format!("good-{c}-{i}"))
                    .await
                    .unwrap_or(0);
                let micros = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
                let _ = hist.record(micros.max(1));
                *statuses.entry(status).or_default() += 1;
                i += 1;
            }
            (hist, statuses)
        });
    }
    let mut all = histogram();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    while let Some(joined) = good.join_next().await {
        let (hist, s) = joined?;
        let _ = all.add(hist);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (rss, hwm) = memory_kib().unwrap_or((0, 0));
    peak.fetch_max(rss, Ordering::Relaxed);
    stop.cancel();
    let _ = sampler.await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(Figures {
        baseline_kib,
        peak_kib: peak.load(Ordering::Relaxed),
        hwm_kib: hwm,
        good: all,
        statuses,
        hostile_connections: hostile.connections.load(Ordering::Relaxed),
        hostile_dropped: hostile.dropped.load(Ordering::Relaxed),
        seconds,
    })
}

async fn post(http: &reqwest::Client, base: &str, key: &str, idem: &str) -> anyhow::Result<u16> {
    let body = format!(
        r#"{{"idempotency_key":"{idem}","workflow_id":"checkout","event_type":"step_succeeded","occurred_at":"{}","step":"charge","vendor":"stripe"}}"#,
        chrono::Utc::now().to_rfc3339()
    );
    let resp = http
        .post(format!("{base}/api/v1/events"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let _ = resp.bytes().await;
    Ok(status)
}

/// Connects, retrying (the gateway may be at its connection limit).
async fn connect(addr: SocketAddr, hostile: &Hostile) -> Option<TcpStream> {
    match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            hostile.connections.fetch_add(1, Ordering::Relaxed);
            Some(s)
        }
        _ => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

async fn slowloris(
    addr: SocketAddr,
    hostile: Arc<Hostile>,
    stop: CancellationToken,
    reconnect: Duration,
    i: usize,
) {
    let mut first = true;
    while !stop.is_cancelled() {
        if !std::mem::take(&mut first) {
            tokio::time::sleep(reconnect).await;
        }
        let Some(mut s) = connect(addr, &hostile).await else {
            continue;
        };
        let head = format!("POST /api/v1/events HTTP/1.1\r\nHost: bench\r\nX-Slow-{i}: ");
        if s.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if s.write_all(b"a").await.is_err() {
                hostile.dropped.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}

async fn upload(
    addr: SocketAddr,
    hostile: Arc<Hostile>,
    stop: CancellationToken,
    reconnect: Duration,
    i: usize,
) {
    static CHUNK: [u8; 64 * 1024] = [b' '; 64 * 1024];
    let now = || chrono::Utc::now().timestamp();
    let mut first = true;
    while !stop.is_cancelled() {
        if !std::mem::take(&mut first) {
            tokio::time::sleep(reconnect).await;
        }
        let Some(mut s) = connect(addr, &hostile).await else {
            continue;
        };
        let signed = |ts: i64| {
            format!(
                "X-Awfdrs-Tenant: bench-slowclients\r\nwebhook-id: msg_{i}\r\n\
                 webhook-timestamp: {ts}\r\nwebhook-signature: v1,AAAA\r\n"
            )
        };
        // What each kind sends before it stalls: a little of the announced
        // 8 MiB, or (chunked and signed) just under the webhook cap.
        let (head, chunked, stall_after) = match i % 3 {
            0 => (
                format!(
                    "POST /api/v1/events/batch HTTP/1.1\r\nHost: bench\r\n\
                     Content-Type: application/json\r\nContent-Length: {UPLOAD_BYTES}\r\n\r\n"
                ),
                false,
                CHUNK.len(),
            ),
            1 => (
                format!(
                    "POST /api/v1/events/batch HTTP/1.1\r\nHost: bench\r\n{}\
                     Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                    signed(now())
                ),
                true,
                15 * CHUNK.len(),
            ),
            _ => (
                format!(
                    "POST /api/v1/events/batch HTTP/1.1\r\nHost: bench\r\n{}\
                     Content-Type: application/json\r\nContent-Length: {UPLOAD_BYTES}\r\n\r\n",
                    signed(now())
                ),
                false,
                CHUNK.len(),
            ),
        };
        if s.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        // Write the start of the body, then hold.
        let mut sent = 0;
        let mut failed = false;
        while sent < stall_after && !failed {
            let wrote = if chunked {
                let size = format!("{:x}\r\n", CHUNK.len());
                tokio::select! {
                    r = async {
                        s.write_all(size.as_bytes()).await?;
                        s.write_all(&CHUNK).await?;
                        s.write_all(b"\r\n").await
                    } => r,
                    () = stop.cancelled() => return,
                }
            } else {
                tokio::select! {
                    r = s.write_all(&CHUNK) => r,
                    () = stop.cancelled() => return,
                }
            };
            failed = wrote.is_err();
            sent += CHUNK.len();
        }
        if failed {
            hostile.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // Stalled: wait until the gateway closes the connection.
        let mut buf = [0u8; 4096];
        loop {
            use tokio::io::AsyncReadExt as _;
            tokio::select! {
                r = s.read(&mut buf) => match r {
                    Ok(0) | Err(_) => { hostile.dropped.fetch_add(1, Ordering::Relaxed); break }
                    Ok(_) => {}
                },
                () = stop.cancelled() => return,
            }
        }
    }
}
