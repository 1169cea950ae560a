//! The command line: the top-level commands and where each one runs. Every
//! command's own arguments live in its module.

use std::path::PathBuf;

use awfdrs_config::Config;
use clap::{Parser, Subcommand};

use crate::admin::AdminCommand;
use crate::bench::BenchArgs;
use crate::breakers::BreakersCommand;
use crate::callbacks::CallbacksCommand;
use crate::channels::ChannelsCommand;
use crate::demo::DemoArgs;
use crate::dlq::DlqCommand;
use crate::events::EventsCommand;
use crate::incidents::IncidentsCommand;
use crate::remedy::{ActionsCommand, ModeArgs, PauseArgs};
use crate::retention::RetentionCommand;
use crate::rules::RulesCommand;
use crate::secrets::SecretsCommand;
use crate::tenants::TenantsCommand;
use crate::up::{UpArgs, WorkerArgs};

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

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate, declare the streams, and run the gateway and every worker in this process.
    Up(UpArgs),
    /// Run one worker.
    Worker(WorkerArgs),
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
        command: DlqCommand,
    },
    /// Read incidents.
    Incidents {
        #[command(subcommand)]
        command: IncidentsCommand,
    },
    /// Read and cancel actions.
    Actions {
        #[command(subcommand)]
        command: ActionsCommand,
    },
    /// Register or remove a workflow's HTTP callback for retry commands.
    Callbacks {
        #[command(subcommand)]
        command: CallbacksCommand,
    },
    /// Add, list or remove a tenant's notification channels.
    Channels {
        #[command(subcommand)]
        command: ChannelsCommand,
    },
    /// Print or set a tenant's remediation mode (auto, approve, shadow, off).
    Mode(ModeArgs),
    /// Pause automatic retries (of a tenant, or of every tenant).
    Pause(PauseArgs),
    /// Resume automatic retries (of a tenant, or of every tenant).
    Resume(PauseArgs),
    /// Show or change how long idempotency keys and published outbox rows are kept.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Seal the secrets at rest with the current key (key rotation).
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Validate rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Send events as a producer does: over HTTP to the gateway, or on NATS.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Send a short scripted scenario through HTTP and NATS and print the incidents.
    Demo(DemoArgs),
    /// Measure ingestion over NATS and HTTP against this machine's raw ceiling; print figures.
    Bench(BenchArgs),
}

/// The configuration from the file, the environment and `--http`.
fn load(cli_config: Option<&std::path::Path>, http: Option<String>) -> anyhow::Result<Config> {
    let overrides: Vec<(&str, String)> = http.into_iter().map(|a| ("http.addr", a)).collect();
    Ok(Config::from_process_env(cli_config, &overrides)?)
}

/// Runs the command.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let file = cli.config.as_deref();
    match cli.command {
        Command::Up(args) => crate::up::up(load(file, args.http)?).await,
        Command::Worker(args) => crate::up::worker(load(file, args.http)?, args.name).await,
        Command::Migrate => crate::up::migrate(load(file, None)?).await,
        Command::Tenants { command } => crate::tenants::run(load(file, None)?, command).await,
        Command::Breakers { command } => crate::breakers::run(load(file, None)?, command).await,
        Command::Admin { command } => crate::admin::run(load(file, None)?, command).await,
        Command::Incidents { command } => crate::incidents::run(load(file, None)?, command).await,
        Command::Dlq { command } => crate::dlq::run(load(file, None)?, command).await,
        Command::Actions { command } => crate::remedy::actions(load(file, None)?, command).await,
        Command::Callbacks { command } => crate::callbacks::run(load(file, None)?, command).await,
        Command::Channels { command } => crate::channels::run(load(file, None)?, command).await,
        Command::Mode(args) => crate::remedy::mode(load(file, None)?, args).await,
        Command::Pause(args) => crate::remedy::pause(load(file, None)?, args, true).await,
        Command::Resume(args) => crate::remedy::pause(load(file, None)?, args, false).await,
        Command::Retention { command } => crate::retention::run(load(file, None)?, command).await,
        Command::Secrets { command } => crate::secrets::run(load(file, None)?, command).await,
        Command::Rules { command } => crate::rules::run(command, || load(file, None)),
        Command::Events { command } => crate::events::run(load(file, None)?, command).await,
        Command::Demo(args) => crate::demo::run(load(file, None)?, args).await,
        Command::Bench(args) => crate::bench::run(load(file, None)?, args, file).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::Cli;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command path (`tenants rotate-key`, ...), depth first.
    fn paths(command: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        for sub in command.get_subcommands() {
            let path = format!("{prefix}{}", sub.get_name());
            out.push(path.clone());
            paths(sub, &format!("{path} "), out);
        }
    }

    #[test]
    fn the_commands_are_the_documented_ones() {
        let mut found = Vec::new();
        paths(&Cli::command(), "", &mut found);
        found.sort();
        let mut expected = [
            "up",
            "worker",
            "migrate",
            "tenants",
            "tenants create",
            "tenants list",
            "tenants webhook-secret",
            "tenants rotate-key",
            "tenants revoke-key",
            "admin",
            "admin create-key",
            "breakers",
            "breakers list",
            "breakers reset",
            "breakers open",
            "dlq",
            "dlq list",
            "dlq show",
            "dlq replay",
            "incidents",
            "incidents list",
            "incidents show",
            "incidents explain",
            "incidents ack",
            "actions",
            "actions list",
            "actions approve",
            "actions cancel",
            "callbacks",
            "callbacks set",
            "callbacks remove",
            "channels",
            "channels add",
            "channels list",
            "channels remove",
            "mode",
            "pause",
            "resume",
            "retention",
            "retention show",
            "retention set",
            "secrets",
            "secrets rotate",
            "rules",
            "rules check",
            "events",
            "events send",
            "events publish",
            "demo",
            "bench",
        ]
        .map(str::to_owned)
        .to_vec();
        expected.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn the_documented_invocations_parse() {
        for line in [
            "up --http 127.0.0.1:8080",
            "worker gateway --http 127.0.0.1:8080",
            "worker detector",
            "worker analyzer",
            "worker coordinator",
            "worker scheduler",
            "worker notifier",
            "migrate",
            "tenants create acme",
            "tenants list",
            "tenants rotate-key acme",
            "tenants revoke-key acme",
            "tenants webhook-secret acme",
            "admin create-key --label ops",
            "incidents list --tenant acme --status OPEN --limit 5 --json",
            "incidents show 0191a9c4-7d3e-7c2a-9f1e-2b3c4d5e6f70 --json",
            "incidents explain",
            "incidents explain 0191a9c4-7d3e-7c2a-9f1e-2b3c4d5e6f70 --json",
            "incidents explain --tenant acme --wait 0",
            "actions list --tenant acme --status SCHEDULED --json",
            "actions cancel 0191a9c4-7d3e-7c2a-9f1e-2b3c4d5e6f70 --reason duplicate",
            "callbacks set checkout https://hooks.example.com/retry --tenant acme",
            "callbacks remove checkout --tenant acme",
            "channels add oncall https://hooks.example.com/awfdrs --tenant acme",
            "channels add pager https://events.pagerduty.com/v2/enqueue --tenant acme --kind pagerduty --routing-key R0UT1NG --min-severity high",
            "channels list --tenant acme",
            "channels add boss https://hooks.example.com/boss --tenant acme --level 2",
            "incidents ack 0191a9c4-7d3e-7c2a-9f1e-2b3c4d5e6f70",
            "channels remove 0191a9c4-7d3e-7c2a-9f1e-2b3c4d5e6f70 --tenant acme",
            "mode --tenant acme",
            "mode --tenant acme shadow",
            "pause --reason incident-review",
            "resume --tenant acme --reason done",
            "events send --key K --url http://127.0.0.1:8080 event.json",
            "events send --tenant acme",
            "events publish --tenant acme event.json",
            "breakers list --json",
            "breakers reset stripe",
            "breakers open stripe --reason outage",
            "dlq list --stage detector --limit 5 --json",
            "dlq show 1 --payload",
            "dlq replay 1",
            "rules check config/rules",
            "secrets rotate",
            "secrets rotate --batch 500 --json",
            "demo --url http://127.0.0.1:8080 --timeout 60",
            "bench",
            "--config config/awfdrs.yaml tenants list",
        ] {
            let argv = std::iter::once("awfdrs").chain(line.split_whitespace());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("awfdrs {line}: {e}");
            }
        }
    }

    #[test]
    fn a_wrong_worker_or_a_missing_reason_is_refused() {
        for line in [
            "worker mailer",
            "breakers open stripe",
            "tenants create",
            "incidents show not-an-id",
            "mode --tenant acme sometimes",
            "pause",
            "incidents explain 0191a9c4-7d3e-7c2a-9f1e-2b3c4d5e6f70 --tenant acme",
        ] {
            let argv = std::iter::once("awfdrs").chain(line.split_whitespace());
            assert!(Cli::try_parse_from(argv).is_err(), "awfdrs {line}");
        }
    }
}
