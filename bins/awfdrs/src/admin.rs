//! `awfdrs admin ...`: operator keys, which see every tenant.

use awfdrs_config::Config;
use clap::Subcommand;

/// The admin-key commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin key and print it (alone, on stdout).
    CreateKey {
        #[arg(long, default_value = "operator")]
        label: String,
    },
}

/// Runs an admin command against the database.
pub async fn run(config: Config, command: AdminCommand) -> anyhow::Result<()> {
    let store = crate::connect::store(&config).await?;
    let AdminCommand::CreateKey { label } = command;
    let key = awfdrs_domain::new_api_key();
    store.create_admin_key(&label, &key).await?;
    println!("{key}");
    eprintln!("admin key {label:?} created; it sees every tenant");
    Ok(())
}
