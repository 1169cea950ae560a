//! `awfdrs breakers ...`: vendor circuit breakers, read and changed through
//! the same KV bucket and audit trail as the workers.

use awfdrs_config::Config;
use clap::Subcommand;

/// The breaker commands.
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

/// Runs a breaker command through the watched breakers (KV and the database).
pub async fn run(config: Config, command: BreakersCommand) -> anyhow::Result<()> {
    let ctx = awfdrs_runtime::Context::connect(config).await?;
    ctx.prepare().await?;
    let breakers = &ctx.breakers;
    let actor = format!(
        "operator:{}",
        std::env::var("USER").unwrap_or_else(|_| "cli".to_owned())
    );
    let fail = |e: awfdrs_guard::GuardError| anyhow::anyhow!("{e}");
    match command {
        BreakersCommand::List { json } => {
            let items = breakers.list(awfdrs_guard::now());
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
                return Ok(());
            }
            println!(
                "{:<16}  {:<9}  {:>7}  {:>6}  {:<20}  UPDATED",
                "VENDOR", "STATE", "FAILURE", "CALLS", "OPENED"
            );
            for b in items {
                let state = serde_json::to_value(b.state)?;
                println!(
                    "{:<16}  {:<9}  {:>6.1}%  {:>6}  {:<20}  {}",
                    b.vendor,
                    state.as_str().unwrap_or("?"),
                    b.failure_rate * 100.0,
                    b.calls,
                    b.opened_at
                        .map_or_else(|| "-".to_owned(), |t| t.format("%F %T").to_string()),
                    b.updated_at
                        .map_or_else(|| "never".to_owned(), |t| t.format("%F %T").to_string()),
                );
            }
        }
        BreakersCommand::Reset { vendor } => {
            let t = breakers.reset(&vendor, &actor).await.map_err(fail)?;
            match t {
                Some(t) => eprintln!("{vendor}: {:?} -> {:?} ({})", t.from, t.to, t.reason),
                None => eprintln!("{vendor}: already closed"),
            }
        }
        BreakersCommand::Open { vendor, reason } => {
            let t = breakers
                .force_open(&vendor, &actor, &reason)
                .await
                .map_err(fail)?;
            match t {
                Some(t) => eprintln!("{vendor}: {:?} -> {:?} ({})", t.from, t.to, t.reason),
                None => eprintln!("{vendor}: already forced open"),
            }
        }
    }
    Ok(())
}
