//! The command line.

use std::path::PathBuf;

use anyhow::Context as _;
use awfdrs_config::Config;
use clap::{Parser, Subcommand, ValueEnum};

/// AWFDRS: automated workflow failure detection and remediation.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
pub struct Cli {
    /// Configuration file (default: config/awfdrs.yaml when present).
    #[arg(long, global = true, env = "AWFDRS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, declare the streams, and run the gateway and every worker in this process.
    Up {
        /// Listen address of the gateway (overrides AWFDRS_HTTP_ADDR).
        #[arg(long)]
        http: Option<String>,
    },
    /// Run one worker.
    Worker {
        #[arg(value_enum)]
        name: Worker,
        /// Listen address of the gateway (gateway only).
        #[arg(long)]
        http: Option<String>,
    },
    /// Apply database migrations and declare the JetStream topology.
    Migrate,
    /// Manage tenants.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
    /// Manage operator (admin) keys, which see every tenant.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Vendor circuit breakers: list, reset, or force open (the kill switch).
    Breakers {
        #[command(subcommand)]
        command: BreakersCommand,
    },
    /// Dead letters: list, show, or replay them (a replay is validated again).
    Dlq {
        #[command(subcommand)]
        command: crate::dlq::DlqCommand,
    },
    /// Read incidents.
    Incidents {
        #[command(subcommand)]
        command: IncidentsCommand,
    },
    /// Validate rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Send events as a producer does: over HTTP to the gateway, or on NATS.
    Events {
        #[command(subcommand)]
        command: crate::events::EventsCommand,
    },
    /// Send a short scripted scenario through HTTP and NATS and print the incidents.
    Demo {
        /// The gateway's base URL (default: http://<AWFDRS_HTTP_ADDR>).
        #[arg(long)]
        url: Option<String>,
        /// Seconds the pipeline gets to settle before the closing check fails.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Measure ingestion over NATS and HTTP against this machine's raw ceiling; print figures.
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Worker {
    Gateway,
    Detector,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant and print its API key (alone, on stdout).
    Create { slug: String },
    /// List tenants.
    List,
    /// Set (or rotate) the tenant's Standard Webhooks signing secret and print it.
    WebhookSecret { slug: String },
    /// Give the tenant a new API key and print it (alone, on stdout); the
    /// old key stops working within about a second on every gateway.
    RotateKey { slug: String },
    /// Revoke the tenant's API key, leaving it none until `rotate-key`.
    RevokeKey { slug: String },
}

#[derive(Debug, Subcommand)]
pub enum BreakersCommand {
    /// Every breaker: vendors in the rules and vendors seen.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Close a vendor's breaker and clear its window.
    Reset { vendor: String },
    /// Force a vendor's breaker open until a reset: no retry reaches it.
    Open {
        vendor: String,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin key and print it (alone, on stdout).
    CreateKey {
        #[arg(long, default_value = "operator")]
        label: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// List incidents, most recently seen first.
    List {
        /// Only this tenant's (slug); all tenants otherwise.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate a rules directory; exits non-zero with every problem.
    Check {
        /// The directory (default: the configured rules.dir).
        dir: Option<PathBuf>,
    },
}

fn load(cli_config: Option<&std::path::Path>, http: Option<String>) -> anyhow::Result<Config> {
    let overrides: Vec<(&str, String)> = http.into_iter().map(|a| ("http.addr", a)).collect();
    Ok(Config::from_process_env(cli_config, &overrides)?)
}

/// Runs the command.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let file = cli.config.as_deref();
    match cli.command {
        Command::Up { http } => crate::up::up(load(file, http)?).await,
        Command::Worker { name, http } => crate::up::worker(load(file, http)?, name).await,
        Command::Migrate => {
            let config = load(file, None)?;
            awfdrs_telemetry::init_logging(config.telemetry.log_format);
            let ctx = awfdrs_runtime::Context::connect(config).await?;
            ctx.prepare().await?;
            eprintln!("migrations applied and streams declared");
            Ok(())
        }
        Command::Tenants { command } => crate::ops::tenants(load(file, None)?, command).await,
        Command::Breakers { command } => crate::ops::breakers(load(file, None)?, command).await,
        Command::Admin { command } => crate::ops::admin(load(file, None)?, command).await,
        Command::Incidents { command } => crate::ops::incidents(load(file, None)?, command).await,
        Command::Dlq { command } => crate::dlq::run(load(file, None)?, command).await,
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => {
            let dir = match dir {
                Some(d) => d,
                None => PathBuf::from(load(file, None)?.rules.dir),
            };
            let rules = awfdrs_rules::Rules::load(&dir)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("rules in {} are invalid", dir.display()))?;
            println!(
                "{}: {} error codes, {} retry policies, {} vendors: ok",
                dir.display(),
                rules.error_codes().count(),
                rules.retry_policies().count(),
                rules.vendors().count()
            );
            Ok(())
        }
        Command::Events { command } => crate::events::run(load(file, None)?, command).await,
        Command::Demo { url, timeout } => {
            let settle = std::time::Duration::from_secs(timeout);
            crate::demo::run(load(file, None)?, url, settle).await
        }
        Command::Bench(args) => crate::bench::run(load(file, None)?, args).await,
    }
}
