//! `guard-bench`: what the shared safety state costs on this machine. Prints
//! figures, asserts nothing: the breaker check on the local view (ns/op)
//! and JetStream KV compare-and-set updates per second on one hot key and
//! spread over many keys, plus the breaker merge and GCRA check built on
//! them. Uses its own namespace and database, and deletes both at the end.
//!
//! `cargo run --release -p awfdrs-guard --features bench --bin guard-bench`

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use awfdrs_bus::kv::{Bucket, Versioned};
use awfdrs_bus::{Bus, BusError, Namespace};
use awfdrs_guard::names::{BREAKERS_BUCKET, RATELIMITS_BUCKET};
use awfdrs_guard::{BreakerOptions, Breakers, GuardError, Outcomes, RateKey, RateLimits};
use awfdrs_rules::RulesHandle;
use awfdrs_safety::RateLimit;
use awfdrs_store::{BenchDatabase, Store};
use awfdrs_telemetry::Metrics;
use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4333")]
    nats: String,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/awfdrs"
    )]
    database: String,
    #[arg(long, default_value = "config/rules")]
    rules: PathBuf,
    /// Seconds per KV measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
}

const SCRATCH_BUCKET: &str = "bench";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ns = format!("bench{:08x}", rand_u32());
    let timeout = Duration::from_secs(5);
    let bus = Bus::connect(
        &cli.nats,
        Namespace::new(ns.clone()).map_err(anyhow::Error::msg)?,
        1,
        timeout,
        timeout,
    )
    .await?;
    // A throw-away database: the transitions the bench makes are not real.
    let scratch_db = BenchDatabase::create(&cli.database).await?;
    let store = Store::connect(scratch_db.url(), 2, timeout).await?;
    store.migrate().await?;
    let rules = Arc::new(RulesHandle::load(&cli.rules).context("loading rules")?);
    let metrics = Arc::new(Metrics::new());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "guard-bench: {cores} cores, nats-server {}, namespace {ns}",
        bus.server_version()
    );
    let breakers = Breakers::open(
        &bus,
        store,
        rules,
        Arc::clone(&metrics),
        BreakerOptions::new("bench"),
    )
    .await?;
    let window = Duration::from_secs(cli.seconds);

    check_cost(&breakers).await?;

    let scratch = bus.bucket(SCRATCH_BUCKET, 1).await?;
    for (keys, writers, seeded) in [
        (1, 1, false),
        (1, 8, false),
        (1, 32, false),
        (256, 64, false),
        (256, 64, true),
    ] {
        let t = kv_updates(&scratch, keys, writers, seeded, window).await?;
        let how = if seeded {
            "seeded update"
        } else {
            "get + update"
        };
        println!(
            "kv compare-and-set, {keys} key(s), {writers} writers, {how}: {:.0} updates/s \
             ({} conflicts, {} gave up)",
            t.updates as f64 / t.secs,
            t.conflicts,
            t.gave_up
        );
    }

    for writers in [1, 8] {
        let (n, gave_up, secs) = merges(&breakers, writers, window).await?;
        println!(
            "breaker merge (record, seeded from the view), one vendor, {writers} writers: \
             {:.0} merges/s ({gave_up} gave up)",
            n as f64 / secs
        );
    }
    let limits = RateLimits::open(&bus, Arc::clone(&metrics)).await?;
    for keys in [1, 64] {
        let (n, allowed, secs) = gcra(&limits, keys, 16, window).await?;
        println!(
            "gcra check, {keys} key(s), 16 tasks: {:.0} checks/s ({allowed} allowed)",
            n as f64 / secs
        );
    }
    for b in [SCRATCH_BUCKET, BREAKERS_BUCKET, RATELIMITS_BUCKET] {
        bus.delete_bucket(b).await?;
    }
    scratch_db.drop_database().await?;
    Ok(())
}

/// ns per `check` on a closed vendor and on an open one with a full window,
/// on one thread and on every core at once.
async fn check_cost(breakers: &Breakers) -> anyhow::Result<()> {
    let full = Outcomes {
        successes: 10,
        failures: 90,
        sources: vec![1, 2, 3],
    };
    breakers
        .record(
            "bench-closed",
            &Outcomes {
                successes: 5,
                ..Outcomes::default()
            },
            "bench",
        )
        .await?;
    breakers.record("bench-open", &full, "bench").await?;
    for vendor in ["bench-closed", "bench-open"] {
        let state = breakers.get(vendor, awfdrs_guard::now()).state;
        let ns = per_op(breakers, vendor, 2_000_000);
        println!("breaker check (local view), {state} vendor, 1 thread: {ns:.1} ns/op");
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let b = breakers.clone();
                std::thread::spawn(move || per_op(&b, vendor, 2_000_000))
            })
            .collect();
        let each: Vec<f64> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
        let mean = each.iter().sum::<f64>() / each.len().max(1) as f64;
        println!(
            "breaker check (local view), {state} vendor, {threads} threads at once: {mean:.1} ns/op per thread"
        );
    }
    Ok(())
}

fn per_op(breakers: &Breakers, vendor: &str, n: u32) -> f64 {
    let now = awfdrs_guard::now();
    let start = Instant::now();
    for _ in 0..n {
        black_box(breakers.check(black_box(vendor), now));
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

/// What one KV measurement counted.
#[derive(Debug, Default)]
struct Tally {
    updates: u64,
    conflicts: u64,
    /// Updates abandoned after `MAX_CAS_ATTEMPTS` conflicts.
    gave_up: u64,
    secs: f64,
}

/// Counter increments by compare-and-set: `writers` tasks over `keys` keys
/// (task `t` takes keys `t, t + writers, …` when there are enough keys, else
/// all share them).
async fn kv_updates(
    bucket: &Bucket,
    keys: usize,
    writers: usize,
    seeded: bool,
    window: Duration,
) -> anyhow::Result<Tally> {
    let start = Instant::now();
    let deadline = start + window;
    let run = format!("{:08x}", rand_u32());
    let mut handles = Vec::new();
    for w in 0..writers {
        let bucket = bucket.clone();
        let names: Vec<String> = (0..keys)
            .filter(|k| keys < writers || k % writers == w)
            .map(|k| format!("k{run}{k}"))
            .collect();
        handles.push(tokio::spawn(async move {
            let (mut n, mut conflicts, mut gave_up) = (0_u64, 0_u64, 0_u64);
            let mut seeds: Vec<Option<Versioned>> = vec![None; names.len()];
            while Instant::now() < deadline {
                let i = (n as usize) % names.len();
                let seed = if seeded { seeds[i].as_ref() } else { None };
                let out = bucket
                    .cas(&names[i], seed, |cur| {
                        let v: u64 = cur
                            .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok())
                            .unwrap_or(0);
                        Some((v + 1).to_string().into_bytes())
                    })
                    .await;
                match out {
                    Ok(out) => {
                        conflicts += u64::from(out.conflicts);
                        seeds[i] = out.entry;
                        n += 1;
                    }
                    Err(BusError::Contention(c)) => {
                        conflicts += u64::from(c);
                        gave_up += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, BusError>((n, conflicts, gave_up))
        }));
    }
    let mut tally = Tally::default();
    for h in handles {
        let (n, conflicts, gave_up) = h.await??;
        tally.updates += n;
        tally.conflicts += conflicts;
        tally.gave_up += gave_up;
    }
    tally.secs = start.elapsed().as_secs_f64();
    Ok(tally)
}

async fn merges(
    breakers: &Breakers,
    writers: usize,
    window: Duration,
) -> anyhow::Result<(u64, u64, f64)> {
    let start = Instant::now();
    let deadline = start + window;
    let outcomes = Outcomes {
        successes: 3,
        ..Outcomes::default()
    };
    let mut handles = Vec::new();
    for _ in 0..writers {
        let (b, o) = (breakers.clone(), outcomes.clone());
        handles.push(tokio::spawn(async move {
            let (mut n, mut gave_up) = (0_u64, 0_u64);
            while Instant::now() < deadline {
                match b.record("bench-merge", &o, "bench").await {
                    Ok(_) => n += 1,
                    Err(GuardError::Bus(BusError::Contention(_))) => gave_up += 1,
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, GuardError>((n, gave_up))
        }));
    }
    let (mut n, mut gave_up) = (0, 0);
    for h in handles {
        let (a, b) = h.await??;
        n += a;
        gave_up += b;
    }
    Ok((n, gave_up, start.elapsed().as_secs_f64()))
}

async fn gcra(
    limits: &RateLimits,
    keys: usize,
    tasks: usize,
    window: Duration,
) -> anyhow::Result<(u64, u64, f64)> {
    let start = Instant::now();
    let deadline = start + window;
    let limit = RateLimit {
        retries_per_second: 1_000.0,
        burst: 100,
    };
    let mut handles = Vec::new();
    for t in 0..tasks {
        let limits = limits.clone();
        handles.push(tokio::spawn(async move {
            let (mut n, mut allowed) = (0_u64, 0_u64);
            while Instant::now() < deadline {
                let key = RateKey::Tenant(format!("t{}", (t + n as usize) % keys));
                match limits.check(&key, &limit).await {
                    Ok(d) => allowed += u64::from(d.is_allowed()),
                    Err(GuardError::Bus(BusError::Contention(_))) => {}
                    Err(e) => return Err(e),
                }
                n += 1;
            }
            Ok::<_, awfdrs_guard::GuardError>((n, allowed))
        }));
    }
    let (mut n, mut allowed) = (0, 0);
    for h in handles {
        let (a, b) = h.await??;
        n += a;
        allowed += b;
    }
    Ok((n, allowed, start.elapsed().as_secs_f64()))
}

/// A namespace suffix that differs between runs.
fn rand_u32() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32
}
