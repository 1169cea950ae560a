//! `awfdrs secrets rotate`: every secret at rest sealed again with the
//! current key. Rotating a key: make a new one, configure it as the current
//! key with the old one as an old key (`AWFDRS_SECRETS_OLD_KEYS[_FILE]`) on
//! every process, run this, then drop the old key.

use awfdrs_config::Config;
use clap::Subcommand;

/// The secrets commands.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Seal every channel, callback and webhook secret with the current key
    /// (from an old key, or from plain text); prints what it did per column.
    /// Safe to run again; fails when a secret cannot be opened.
    Rotate {
        /// Rows per transaction.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch: i64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a secrets command against the database.
pub async fn run(config: Config, command: SecretsCommand) -> anyhow::Result<()> {
    let SecretsCommand::Rotate { batch, json } = command;
    awfdrs_runtime::require_secrets_key(&config, "awfdrs secrets rotate")?;
    let store = crate::connect::store(&config).await?;
    let report = store.reseal_secrets(batch, false).await?;
    store.pool().close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("sealed with key {}", report.key_id);
        for c in &report.columns {
            println!(
                "{}: {} resealed, {} sealed from plain text, {} already current, {} unreadable",
                c.column,
                c.resealed,
                c.sealed_plain,
                c.current,
                c.unreadable.len()
            );
        }
    }
    for c in &report.columns {
        for u in &c.unreadable {
            eprintln!("{} {}: {}", c.column, u.row, u.reason);
        }
    }
    let unreadable = report.unreadable();
    if unreadable > 0 {
        anyhow::bail!(
            "{unreadable} secrets cannot be opened and were left as they are: give their keys as old keys and run again"
        );
    }
    Ok(())
}
