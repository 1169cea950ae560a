//! `awfdrs incidents ...`: reading incidents.

use awfdrs_config::Config;
use awfdrs_domain::IncidentStatus;
use awfdrs_store::IncidentFilter;
use clap::Subcommand;

/// The incident commands.
#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// List incidents, most recently seen first.
    List {
        /// Only this tenant's (slug); all tenants otherwise.
        #[arg(long)]
        tenant: Option<String>,
        /// Only incidents in this status: NEW, ANALYZING, ACTIONED or RESOLVED.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an incident command against the database.
pub async fn run(config: Config, command: IncidentsCommand) -> anyhow::Result<()> {
    let IncidentsCommand::List {
        tenant,
        status,
        limit,
        json,
    } = command;
    let status = status
        .as_deref()
        .map(str::parse::<IncidentStatus>)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let store = crate::connect::store(&config).await?;
    let tenant_id = match tenant {
        Some(slug) => Some(
            store
                .tenant_by_slug(&slug)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no tenant {slug:?}"))?
                .id,
        ),
        None => None,
    };
    let page = store
        .list_incidents(&IncidentFilter {
            tenant: tenant_id,
            status,
            limit,
            ..IncidentFilter::default()
        })
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&page.items)?);
    } else {
        crate::table::print_incidents(&page.items);
    }
    Ok(())
}
