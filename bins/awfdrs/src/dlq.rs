//! `awfdrs dlq list|show|replay`: the dead letters recorded by the
//! consumers. A replay republishes the stored payload to its original
//! subject under a fresh message id, so it is validated again like any
//! new message.

use std::io::Write as _;

use awfdrs_bus::{Outgoing, headers};
use awfdrs_config::Config;
use awfdrs_store::{DeadLetterRecord, Store, StoreError};
use bytes::Bytes;
use clap::Subcommand;

/// `awfdrs dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, newest first.
    List {
        /// Only this stage's (for example `detector`).
        #[arg(long)]
        stage: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter: its reason, origin, headers and payload (JSON).
    Show {
        id: i64,
        /// Write the payload alone, byte for byte, to stdout.
        #[arg(long)]
        payload: bool,
    },
    /// Publish a dead letter's payload again to its original subject.
    Replay { id: i64 },
}

async fn store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(
        &config.database.url,
        2,
        std::time::Duration::from_millis(config.database.acquire_timeout_ms),
    )
    .await?;
    store.migrate().await?;
    Ok(store)
}

async fn record(store: &Store, id: i64) -> anyhow::Result<DeadLetterRecord> {
    match store.dead_letter(id).await {
        Err(StoreError::NotFound) => anyhow::bail!("no dead letter {id}"),
        r => Ok(r?),
    }
}

/// A value for the terminal: control characters escaped.
fn printable(s: &str, max: usize) -> String {
    let escaped: String = s.escape_debug().collect();
    headers::truncate(&escaped, max).into_owned()
}

/// Runs a `dlq` command.
pub async fn run(config: Config, command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { stage, limit, json } => {
            let store = store(&config).await?;
            let items = store.dead_letters(stage.as_deref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
                return Ok(());
            }
            println!(
                "{:>8}  {:<10}  {:>10}  {:>5}  {:>9}  {:<19}  {:>7}  REASON",
                "ID", "STAGE", "SEQUENCE", "DELIV", "BYTES", "CREATED", "REPLAYS"
            );
            for d in items {
                println!(
                    "{:>8}  {:<10}  {:>10}  {:>5}  {:>9}  {:<19}  {:>7}  {}",
                    d.id,
                    printable(&d.stage, 10),
                    d.stream_sequence,
                    d.delivered,
                    d.payload_bytes,
                    d.created_at.format("%F %T"),
                    d.replay_count,
                    printable(&d.reason, 200),
                );
            }
        }
        DlqCommand::Show { id, payload } => {
            let store = store(&config).await?;
            let d = record(&store, id).await?;
            if payload {
                let mut out = std::io::stdout().lock();
                out.write_all(&d.payload)?;
                out.flush()?;
                return Ok(());
            }
            let mut value = serde_json::to_value(&d)?;
            value["payload_bytes"] = d.payload.len().into();
            value["payload"] = String::from_utf8_lossy(&d.payload).into_owned().into();
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        DlqCommand::Replay { id } => {
            let ctx = awfdrs_runtime::Context::connect(config).await?;
            ctx.prepare().await?;
            let d = record(&ctx.store, id).await?;
            let replay = d.replay_count.saturating_add(1);
            let msg_id = format!("replay:{id}:{replay}");
            let correlation_id = d
                .header(headers::CORRELATION_ID)
                .map(|c| headers::decode(c).into_owned());
            let extra = d
                .header(headers::SOURCE)
                .map(|s| vec![(headers::SOURCE, headers::decode(s).into_owned())])
                .unwrap_or_default();
            let published = ctx
                .bus
                .publish(Outgoing {
                    subject: d.subject.clone(),
                    msg_id: msg_id.clone(),
                    correlation_id,
                    headers: extra,
                    payload: Bytes::from(d.payload),
                })
                .await?;
            if published.duplicate {
                anyhow::bail!(
                    "the broker already holds message {msg_id}: dead letter {id} was replayed concurrently; nothing was published"
                );
            }
            if !ctx.store.mark_dead_letter_replayed(id, replay).await? {
                eprintln!("note: another replay of dead letter {id} was recorded meanwhile");
            }
            println!(
                "dead letter {id} replayed to {} as {msg_id} (stream sequence {})",
                printable(&d.subject, 200),
                published.sequence
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("a\nb\u{1b}[2J", 100), "a\\nb\\u{1b}[2J");
        assert!(printable(&"x".repeat(500), 10).len() <= 10);
    }
}
