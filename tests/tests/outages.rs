//! Outages tell the truth and lose nothing: the real `awfdrs up` against a
//! private nats-server and a private PostgreSQL cluster, under a steady
//! load over HTTP and NATS, while the broker is SIGKILLed (10 s, then three
//! 3 s outages), PostgreSQL is stopped for 30 s, and the process itself is
//! SIGKILLed and restarted. Every answer is then reconciled with the
//! events table: every 202 is stored with its body, no 503 is stored,
//! nothing acked by the broker is lost, nothing is dead-lettered; `/ready`
//! turned 503 within seconds of each long outage and 200 after it, and the
//! process reconnected by itself.
//!
//! Skipped (with a message) only when no nats-server binary is found; see
//! [`PrivateNats::binary`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use awfdrs_store::Store;
use awfdrs_tests::private::{PrivateNats, PrivatePg};
use awfdrs_tests::{Ledger, Up, World, dead_letters, failure, reconcile_within};
use bytes::Bytes;
use serde_json::Value;

const NORMAL: u8 = 0;
const BROKER_DOWN: u8 = 1;
const DATABASE_DOWN: u8 = 2;
const PROCESS_DOWN: u8 = 3;

/// What every sender shares.
struct Load {
    ledger: Ledger,
    phase: AtomicU8,
    stop: AtomicBool,
    seq: AtomicU64,
    /// 503 answers that blamed the database while only the broker was down.
    blamed_database: std::sync::Mutex<Vec<String>>,
    /// Answers other than 202, 503 or none.
    unexpected: std::sync::Mutex<Vec<String>>,
}

/// Waits up to `within` for `/ready` to answer `want`; its body then.
async fn ready_answers(up: &Up, want: u16, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        if let Some((status, body)) = up.ready().await
            && status == want
        {
            return Some(body);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready_turns(up: &Up, want: u16, within: Duration) -> bool {
    ready_answers(up, want, within).await.is_some()
}

/// Whether a readiness answer says what is wrong with the database (the
/// connection refused, a timeout, a shutdown), not merely that it erred.
fn names_a_cause(body: &str) -> bool {
    let b = body.to_lowercase();
    [
        "refused",
        "timed out",
        "timeout",
        "shut",
        "closed",
        "reset",
        "connect",
        "unreachable",
    ]
    .iter()
    .any(|w| b.contains(w))
}

/// Sends one event over HTTP every `every`, each in its own task (at most
/// `max_in_flight` at once), recording every answer.
async fn http_load(
    load: Arc<Load>,
    base: String,
    key: String,
    tenant: uuid::Uuid,
    every: Duration,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let slots = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tasks = tokio::task::JoinSet::new();
    while !load.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let n = load.seq.fetch_add(1, Ordering::Relaxed);
        let body = failure(&format!("h{n}"), "checkout", "outage_probe");
        let (load, client, base, key) = (load.clone(), client.clone(), base.clone(), key.clone());
        tasks.spawn(async move {
            let phase = load.phase.load(Ordering::Relaxed);
            let r = client
                .post(format!("{base}/api/v1/events"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await;
            let (status, answer) = match r {
                Ok(r) => {
                    let s = r.status().as_u16();
                    (s, r.json::<Value>().await.unwrap_or(Value::Null))
                }
                Err(_) => (0, Value::Null),
            };
            let phase_now = load.phase.load(Ordering::Relaxed);
            let k = body["idempotency_key"].as_str().unwrap();
            load.ledger.http(tenant, k, &body, status);
            let detail = answer["detail"].as_str().unwrap_or("").to_lowercase();
            if status == 503
                && phase == BROKER_DOWN
                && phase_now == BROKER_DOWN
                && detail.contains("database")
            {
                load.blamed_database
                    .lock()
                    .unwrap()
                    .push(format!("{k}: {detail}"));
            }
            if !matches!(status, 0 | 202 | 503) {
                load.unexpected
                    .lock()
                    .unwrap()
                    .push(format!("{k}: {status} {answer}"));
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Publishes one event straight to JetStream every `every`, recording the
/// broker's ack (or its absence).
async fn nats_load(
    load: Arc<Load>,
    url: String,
    subject: String,
    tenant: uuid::Uuid,
    every: Duration,
) {
    let client = async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .connect(&url)
        .await
        .expect("connect to the private nats-server");
    let mut js = async_nats::jetstream::new(client);
    js.set_timeout(Duration::from_secs(3));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tasks = tokio::task::JoinSet::new();
    while !load.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let n = load.seq.fetch_add(1, Ordering::Relaxed);
        let key = format!("n{n}");
        let payload = Bytes::from(failure(&key, "checkout", "outage_probe").to_string());
        let (load, js, subject) = (load.clone(), js.clone(), subject.clone());
        tasks.spawn(async move {
            let ack = match js.publish(subject, payload.clone()).await {
                Ok(f) => f.await.ok().map(|a| a.sequence),
                Err(_) => None,
            };
            load.ledger.nats(tenant, &key, payload, ack);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_database_and_process_outages_lose_nothing_and_answer_truthfully() {
    let Some(nats_bin) = PrivateNats::binary() else {
        eprintln!(
            "SKIPPED: no nats-server binary (set AWFDRS_NATS_SERVER_BIN, run scripts/services.sh, or put nats-server on PATH)"
        );
        return;
    };
    let Some(pg_bin) = PrivatePg::bin_dir() else {
        eprintln!("SKIPPED: no PostgreSQL server binaries (initdb, pg_ctl); set AWFDRS_PG_BIN");
        return;
    };
    let pg = tokio::task::block_in_place(|| PrivatePg::start(pg_bin));
    let mut nats = tokio::task::block_in_place(|| PrivateNats::start(nats_bin));
    let world = World::new_at(&pg.admin_url()).await;
    let store = Store::connect(&world.database_url, 4, Duration::from_secs(10))
        .await
        .unwrap();
    let key = awfdrs_domain::new_api_key();
    let tenant = store.create_tenant("acme", &key).await.unwrap();
    let log = std::env::temp_dir().join(format!("awfdrs-outages-{}.log", world.namespace));
    eprintln!("awfdrs up log: {}", log.display());
    let nats_url = nats.url();
    let mut up = Up::spawn(world.env(&[("NATS_URL", &nats_url)]), log.clone());
    up.wait_ready(Duration::from_secs(60)).await;
    let pid = up.pid();

    let load = Arc::new(Load {
        ledger: Ledger::default(),
        phase: AtomicU8::new(NORMAL),
        stop: AtomicBool::new(false),
        seq: AtomicU64::new(0),
        blamed_database: std::sync::Mutex::default(),
        unexpected: std::sync::Mutex::default(),
    });
    let subject = awfdrs_bus::Namespace::new(world.namespace.clone())
        .unwrap()
        .events_subject("acme", "checkout");
    let http = tokio::spawn(http_load(
        load.clone(),
        up.base.clone(),
        key.clone(),
        tenant.id,
        Duration::from_millis(8),
    ));
    let nats_sender = tokio::spawn(nats_load(
        load.clone(),
        nats_url.clone(),
        subject,
        tenant.id,
        Duration::from_millis(20),
    ));

    let mut problems: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    tokio::time::sleep(Duration::from_secs(5)).await;

    // The broker SIGKILLed for 10 s, then three 3 s outages.
    for (i, down) in [10u64, 3, 3, 3].into_iter().enumerate() {
        let at = Instant::now();
        load.phase.store(BROKER_DOWN, Ordering::Relaxed);
        tokio::task::block_in_place(|| nats.kill());
        let turned = ready_turns(&up, 503, Duration::from_secs(down.min(5))).await;
        if !turned {
            let msg = format!("broker outage {i} ({down} s): /ready did not turn 503");
            if down >= 10 {
                problems.push(format!("{msg} within 5 s"));
            } else {
                notes.push(msg);
            }
        }
        tokio::time::sleep(Duration::from_secs(down).saturating_sub(at.elapsed())).await;
        tokio::task::block_in_place(|| nats.restart());
        load.phase.store(NORMAL, Ordering::Relaxed);
        if !ready_turns(&up, 200, Duration::from_secs(30)).await {
            problems.push(format!(
                "broker outage {i}: /ready not 200 within 30 s of the broker's return"
            ));
        }
        if !up.alive() || up.pid() != pid {
            problems.push(format!(
                "broker outage {i}: the process did not survive it ({:?})",
                up.exit_status()
            ));
            up.restart();
            up.wait_ready(Duration::from_secs(60)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // PostgreSQL stopped for 30 s.
    let at = Instant::now();
    load.phase.store(DATABASE_DOWN, Ordering::Relaxed);
    tokio::task::block_in_place(|| pg.stop_server());
    match ready_answers(&up, 503, Duration::from_secs(5)).await {
        None => problems.push("database outage: /ready did not turn 503 within 5 s".into()),
        Some(body) if !names_a_cause(&body) => problems.push(format!(
            "database outage: /ready does not say what is wrong: {body}"
        )),
        Some(_) => {}
    }
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(at.elapsed())).await;
    tokio::task::block_in_place(|| pg.start_server());
    load.phase.store(NORMAL, Ordering::Relaxed);
    if !ready_turns(&up, 200, Duration::from_secs(30)).await {
        problems.push("database outage: /ready not 200 within 30 s of its return".into());
    }
    if !up.alive() || up.pid() != pid {
        problems.push(format!(
            "database outage: the process did not survive it ({:?})",
            up.exit_status()
        ));
        up.restart();
        up.wait_ready(Duration::from_secs(60)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The process SIGKILLed and restarted, twice.
    for _ in 0..2 {
        load.phase.store(PROCESS_DOWN, Ordering::Relaxed);
        up.kill().await;
        up.restart();
        if !up.try_ready(Duration::from_secs(60)).await {
            problems.push("the restarted process did not get ready within 60 s".into());
        }
        load.phase.store(NORMAL, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    load.stop.store(true, Ordering::Relaxed);
    http.await.unwrap();
    nats_sender.await.unwrap();

    // Reconciliation.
    if !up.alive() {
        problems.push(format!("the process is not alive: {:?}", up.exit_status()));
    }
    if !ready_turns(&up, 200, Duration::from_secs(10)).await {
        problems.push("/ready is not 200 at the end".into());
    }
    let client = async_nats::connect(&nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let pool = store.pool().clone();
    let mismatches = reconcile_within(
        Duration::from_secs(60),
        &pool,
        &js,
        &world.namespace,
        &load.ledger,
    )
    .await;
    let n = mismatches.len();
    problems.extend(
        mismatches
            .into_iter()
            .take(20)
            .map(|m| format!("reconciliation: {m}")),
    );
    if n > 20 {
        problems.push(format!("... and {} more reconciliation lines", n - 20));
    }
    let dead = dead_letters(&pool, &js, &world.namespace).await;
    if !dead.is_empty() {
        let mut reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
        reasons.sort_unstable();
        reasons.dedup();
        problems.push(format!(
            "{} messages dead-lettered by outages shorter than nothing: {reasons:?}",
            dead.len()
        ));
    }
    for b in load.blamed_database.lock().unwrap().iter().take(5) {
        problems.push(format!(
            "a broker outage answered as the database's fault: {b}"
        ));
    }
    for u in load.unexpected.lock().unwrap().iter().take(10) {
        problems.push(format!("unexpected answer: {u}"));
    }

    let http_records = load.ledger.http.lock().unwrap().clone();
    let nats_records = load.ledger.nats.lock().unwrap().clone();
    let count = |s: u16| http_records.iter().filter(|r| r.status == s).count();
    eprintln!(
        "outages: HTTP {} sent: {} accepted, {} refused with 503, {} without answer; NATS {} sent, {} acked; {} dead letters",
        http_records.len(),
        count(202),
        count(503),
        count(0),
        nats_records.len(),
        nats_records.iter().filter(|r| r.sequence.is_some()).count(),
        dead.len()
    );
    for note in &notes {
        eprintln!("outages: note: {note}");
    }
    if count(202) == 0 || nats_records.iter().all(|r| r.sequence.is_none()) {
        problems.push("no traffic got through: the test tested nothing".into());
    }
    up.kill().await;
    drop(nats);
    drop(pg);
    if problems.is_empty() {
        let _ = std::fs::remove_file(&log);
    }
    assert!(
        problems.is_empty(),
        "{} problems (log: {}):\n  {}",
        problems.len(),
        log.display(),
        problems.join("\n  ")
    );
}
