//! `awfdrs retention show|set`: how long idempotency keys, published
//! outbox rows and events are kept before the detector's retention task
//! deletes them (events: whole day partitions).

use awfdrs_config::Config;
use awfdrs_safety::duration::{format_duration, parse_duration};
use awfdrs_store::{Kept, Retention};
use clap::Subcommand;

/// The retention commands.
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Print each retention, who set it, and its last sweep.
    Show,
    /// Keep `name` (`ingest_keys`, at least 7d; `outbox`, at least 1h;
    /// `events`, at least 1d) for `keep` (e.g. `30d`, `12h`).
    Set {
        /// `ingest_keys`, `outbox` or `events`.
        name: String,
        /// How long, e.g. `14d`.
        keep: String,
    },
}

fn print(rows: &[Retention]) {
    println!(
        "{:<12}  {:>10}  {:<24}  {:<32}  LAST SWEEP",
        "NAME", "KEEP", "SET BY", "SET AT"
    );
    for r in rows {
        let keep = format_duration(std::time::Duration::from_secs(
            u64::try_from(r.keep_secs).unwrap_or_default(),
        ));
        let last = r.last_pruned_at.map_or_else(
            || "never".to_owned(),
            |at| format!("{at} ({} deleted)", r.last_pruned),
        );
        println!(
            "{:<12}  {:>10}  {:<24}  {:<32}  {last}",
            r.name,
            keep,
            r.updated_by,
            r.updated_at.to_string()
        );
    }
}

/// Runs a retention command against the database.
pub async fn run(config: Config, command: RetentionCommand) -> anyhow::Result<()> {
    let store = crate::connect::store(&config).await?;
    match command {
        RetentionCommand::Show => print(&store.retention().await?),
        RetentionCommand::Set { name, keep } => {
            let kept = Kept::named(&name).ok_or_else(|| {
                anyhow::anyhow!("no retention {name:?}: ingest_keys, outbox or events")
            })?;
            let keep = parse_duration(&keep).map_err(|e| anyhow::anyhow!("{keep:?}: {e}"))?;
            let by = format!(
                "operator:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned())
            );
            let set = store
                .set_retention(kept, keep, &by)
                .await
                .map_err(|e| match e {
                    awfdrs_store::StoreError::Conflict(why) => anyhow::anyhow!(why),
                    e => e.into(),
                })?;
            print(&[set]);
        }
    }
    Ok(())
}
