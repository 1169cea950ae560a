//! `awfdrs rules ...`: checking a rules directory before it is deployed.

use std::path::PathBuf;

use anyhow::Context as _;
use awfdrs_config::Config;
use clap::Subcommand;

/// The rules commands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate a rules directory; exits non-zero with every problem.
    Check {
        /// The directory (default: the configured rules.dir).
        dir: Option<PathBuf>,
    },
}

/// Runs a rules command; the configuration is loaded only when no
/// directory is given.
pub fn run(
    command: RulesCommand,
    config: impl FnOnce() -> anyhow::Result<Config>,
) -> anyhow::Result<()> {
    let RulesCommand::Check { dir } = command;
    let dir = match dir {
        Some(d) => d,
        None => PathBuf::from(config()?.rules.dir),
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
