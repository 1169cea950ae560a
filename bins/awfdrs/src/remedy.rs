//! `awfdrs actions ...`, `awfdrs mode`, `awfdrs pause` and `awfdrs resume`:
//! what operators do to remediation.

use awfdrs_config::Config;
use awfdrs_domain::ActionStatus;
use awfdrs_store::{ActionFilter, Store, StoreError, TenantMode};
use clap::{Args, Subcommand};
use uuid::Uuid;

/// The action commands.
#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// List actions, newest first.
    List {
        /// Only this tenant's (slug); all tenants otherwise.
        #[arg(long)]
        tenant: Option<String>,
        /// Only the actions of this incident.
        #[arg(long)]
        incident: Option<Uuid>,
        /// Only actions in this state: PENDING, SCHEDULED, EXECUTING,
        /// SUCCEEDED, FAILED or CANCELLED.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Cancel an action that has not finished.
    Cancel {
        /// The action's id.
        id: Uuid,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: String,
    },
    /// Approve a retry waiting for an operator's approval.
    Approve {
        /// The action's id.
        id: Uuid,
        /// Only if it is this tenant's (slug).
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `awfdrs mode`'s arguments.
#[derive(Debug, Args)]
pub struct ModeArgs {
    /// The tenant (slug).
    #[arg(long)]
    pub tenant: String,
    /// Set it: auto, approve, shadow or off; without one, print it.
    #[arg(value_parser = ["auto", "approve", "shadow", "off"])]
    pub mode: Option<String>,
}

/// `awfdrs pause` and `awfdrs resume`'s arguments.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Only this tenant's retries (slug); every tenant's otherwise.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Why, for the audit trail.
    #[arg(long)]
    pub reason: String,
}

fn actor() -> String {
    format!(
        "operator:{}",
        std::env::var("USER").unwrap_or_else(|_| "cli".to_owned())
    )
}

async fn tenant_id(store: &Store, slug: &str) -> anyhow::Result<Uuid> {
    Ok(store
        .tenant_by_slug(slug)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant {slug:?}"))?
        .id)
}

/// Runs an action command against the database.
pub async fn actions(config: Config, command: ActionsCommand) -> anyhow::Result<()> {
    let store = crate::connect::store(&config).await?;
    match command {
        ActionsCommand::List {
            tenant,
            incident,
            status,
            limit,
            json,
        } => {
            let status = status
                .as_deref()
                .map(str::parse::<ActionStatus>)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let tenant = match tenant {
                Some(slug) => Some(tenant_id(&store, &slug).await?),
                None => None,
            };
            let page = store
                .list_actions(&ActionFilter {
                    tenant,
                    incident,
                    status,
                    limit,
                    ..ActionFilter::default()
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page.items)?);
            } else {
                println!(
                    "{:<36}  {:<8}  {:<9}  {:>7}  {:<20}  REASON",
                    "ID", "KIND", "STATUS", "ATTEMPT", "DUE"
                );
                for a in &page.items {
                    println!(
                        "{:<36}  {:<8}  {:<9}  {:>7}  {:<20}  {}{}",
                        a.id,
                        a.kind,
                        a.status,
                        a.attempt,
                        a.due_at.map_or_else(
                            || "-".to_owned(),
                            |d| d.format("%Y-%m-%d %H:%M:%S").to_string()
                        ),
                        if a.shadow { "(shadow) " } else { "" },
                        a.reason
                    );
                }
            }
        }
        ActionsCommand::Cancel { id, reason } => {
            match store.cancel_action(None, id, &actor(), &reason).await {
                Ok(a) => println!("action {} {}", a.id, a.status),
                Err(StoreError::NotFound) => anyhow::bail!("no action {id}"),
                Err(StoreError::Conflict(why)) => {
                    anyhow::bail!("action {id} cannot be cancelled: {why}")
                }
                Err(e) => return Err(e.into()),
            }
        }
        ActionsCommand::Approve { id, tenant } => {
            let scope = match tenant {
                Some(slug) => Some(tenant_id(&store, &slug).await?),
                None => None,
            };
            match store.approve_action(scope, id, &actor()).await {
                Ok(a) => println!(
                    "action {} approved by {}",
                    a.id,
                    a.approved_by.as_deref().unwrap_or("-")
                ),
                Err(StoreError::NotFound) => anyhow::bail!("no action {id}"),
                Err(StoreError::Conflict(why)) => {
                    anyhow::bail!("action {id} cannot be approved: {why}")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Prints or sets a tenant's remediation mode.
pub async fn mode(config: Config, args: ModeArgs) -> anyhow::Result<()> {
    let store = crate::connect::store(&config).await?;
    let tenant = tenant_id(&store, &args.tenant).await?;
    let current = store.tenant_mode(tenant).await?;
    if let Some(mode) = args.mode {
        let next = TenantMode {
            mode,
            paused: current.paused,
        };
        store
            .set_tenant_mode(tenant, &next, &actor(), "set from the command line")
            .await?;
        println!("{}: {}", args.tenant, next.mode);
    } else {
        println!(
            "{}: {}{}",
            args.tenant,
            current.mode,
            if current.paused { " (paused)" } else { "" }
        );
    }
    Ok(())
}

/// Pauses or resumes automatic retries, of one tenant or of all.
pub async fn pause(config: Config, args: PauseArgs, paused: bool) -> anyhow::Result<()> {
    let store = crate::connect::store(&config).await?;
    let what = if paused { "paused" } else { "resumed" };
    match args.tenant {
        Some(slug) => {
            let tenant = tenant_id(&store, &slug).await?;
            let current = store.tenant_mode(tenant).await?;
            let next = TenantMode {
                mode: current.mode,
                paused,
            };
            store
                .set_tenant_mode(tenant, &next, &actor(), &args.reason)
                .await?;
            println!("automatic retries of {slug} {what}");
        }
        None => {
            store
                .set_global_pause(paused, &actor(), &args.reason)
                .await?;
            println!("automatic retries of every tenant {what}");
        }
    }
    Ok(())
}
