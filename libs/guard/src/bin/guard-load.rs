//! `guard-load`: drives the shared breakers from a separate process, for the
//! tests that prove several processes agree (concurrent merges, racing
//! resets, a probe holder killed mid-probe). Prints one JSON line of what it
//! did on stdout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use awfdrs_bus::{Bus, Namespace};
use awfdrs_guard::{BreakerOptions, Breakers, Outcomes, names::BREAKERS_BUCKET};
use awfdrs_rules::RulesHandle;
use awfdrs_safety::breaker::source_id;
use awfdrs_store::Store;
use awfdrs_telemetry::{BucketLabels, Metrics};
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Debug, Parser)]
struct Cli {
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4333")]
    nats: String,
    #[arg(long, env = "DATABASE_URL")]
    database: String,
    #[arg(long, env = "AWFDRS_NAMESPACE")]
    namespace: String,
    /// Directory of the rules files.
    #[arg(long)]
    rules: PathBuf,
    /// This process's name in the audit trail.
    #[arg(long, default_value = "guard-load")]
    worker: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// `tasks` concurrent tasks each merge `rounds` times one success and
    /// one failure from source `<source>-<task>`.
    Record {
        #[arg(long)]
        vendor: String,
        #[arg(long, default_value_t = 4)]
        tasks: usize,
        #[arg(long, default_value_t = 100)]
        rounds: u64,
        #[arg(long, default_value = "source")]
        source: String,
    },
    /// Resets the breaker (as an operator).
    Reset {
        #[arg(long)]
        vendor: String,
    },
    /// Forces the breaker open (as an operator).
    ForceOpen {
        #[arg(long)]
        vendor: String,
    },
    /// Takes a probe slot, says so, and then waits for ever without
    /// reporting (until killed).
    Probe {
        #[arg(long)]
        vendor: String,
        #[arg(long)]
        holder: String,
    },
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let ns = Namespace::new(cli.namespace.clone()).map_err(anyhow::Error::msg)?;
    let timeout = Duration::from_secs(5);
    let bus = Bus::connect(&cli.nats, ns, 1, timeout, timeout).await?;
    let store = Store::connect(&cli.database, 4, timeout).await?;
    let rules = Arc::new(RulesHandle::load(&cli.rules).context("loading rules")?);
    let metrics = Arc::new(Metrics::new());
    let options = BreakerOptions::new(cli.worker.clone());
    let breakers = Breakers::open(&bus, store, rules, Arc::clone(&metrics), options).await?;
    let report = match cli.command {
        Command::Record {
            vendor,
            tasks,
            rounds,
            source,
        } => record(&breakers, &vendor, tasks, rounds, &source).await?,
        Command::Reset { vendor } => {
            let t = breakers.reset(&vendor, &cli.worker).await?;
            json!({ "transitions": usize::from(t.is_some()) })
        }
        Command::ForceOpen { vendor } => {
            let t = breakers
                .force_open(&vendor, &cli.worker, "load test")
                .await?;
            json!({ "transitions": usize::from(t.is_some()) })
        }
        Command::Probe { vendor, holder } => {
            let grant = breakers.try_acquire_probe(&vendor, &holder).await?;
            let expires = grant.as_ref().map(|g| g.expires_at.as_unix_millis());
            println!(
                "{}",
                json!({ "acquired": grant.is_some(), "expires_at": expires })
            );
            // Hold the slot without reporting: the test kills us here.
            std::future::pending::<serde_json::Value>().await
        }
    };
    let conflicts = metrics
        .kv_cas_conflicts
        .get_or_create(&BucketLabels {
            bucket: BREAKERS_BUCKET,
        })
        .get();
    let mut report = report;
    report["conflicts"] = json!(conflicts);
    println!("{report}");
    Ok(())
}

async fn record(
    breakers: &Breakers,
    vendor: &str,
    tasks: usize,
    rounds: u64,
    source: &str,
) -> anyhow::Result<serde_json::Value> {
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let b = breakers.clone();
        let vendor = vendor.to_owned();
        let outcomes = Outcomes {
            successes: 1,
            failures: 1,
            sources: vec![source_id(&format!("{source}-{task}"))],
        };
        handles.push(tokio::spawn(async move {
            let mut transitions = 0_u64;
            for _ in 0..rounds {
                let t = b.record(&vendor, &outcomes, "load").await?;
                transitions += u64::from(t.is_some());
            }
            Ok::<_, awfdrs_guard::GuardError>(transitions)
        }));
    }
    let mut transitions = 0;
    for h in handles {
        transitions += h.await.context("record task panicked")??;
    }
    let calls = 2 * rounds * tasks as u64;
    Ok(json!({ "transitions": transitions, "calls": calls }))
}
