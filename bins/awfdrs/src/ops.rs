//! Operator commands that read or change the database directly.

use awfdrs_config::Config;
use awfdrs_store::{IncidentFilter, Store};

use crate::cli::{AdminCommand, IncidentsCommand, TenantsCommand};

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

/// `awfdrs tenants ...`
pub async fn tenants(config: Config, command: TenantsCommand) -> anyhow::Result<()> {
    let store = store(&config).await?;
    match command {
        TenantsCommand::Create { slug } => {
            awfdrs_domain::Slug::new(slug.clone())?;
            let key = awfdrs_domain::new_api_key();
            store.create_tenant(&slug, &key).await?;
            // The key alone on stdout, so `KEY=$(awfdrs tenants create x)` works.
            println!("{key}");
            eprintln!("tenant {slug} created; the key is shown once and stored only as a hash");
        }
        TenantsCommand::WebhookSecret { slug } => {
            let secret = awfdrs_gateway::webhook::new_secret();
            store
                .set_webhook_secret(&slug, &secret)
                .await
                .map_err(|e| anyhow::anyhow!("tenant {slug}: {e}"))?;
            println!("{secret}");
            eprintln!(
                "sign webhooks with this secret (Standard Webhooks) and name the tenant in X-Awfdrs-Tenant: {slug}"
            );
        }
        TenantsCommand::List => {
            for t in store.tenants().await? {
                println!("{}\t{}", t.slug, t.id);
            }
        }
    }
    Ok(())
}

/// `awfdrs admin ...`
pub async fn admin(config: Config, command: AdminCommand) -> anyhow::Result<()> {
    let store = store(&config).await?;
    let AdminCommand::CreateKey { label } = command;
    let key = awfdrs_domain::new_api_key();
    store.create_admin_key(&label, &key).await?;
    println!("{key}");
    eprintln!("admin key {label:?} created; it sees every tenant");
    Ok(())
}

/// `awfdrs incidents ...`
pub async fn incidents(config: Config, command: IncidentsCommand) -> anyhow::Result<()> {
    let store = store(&config).await?;
    let IncidentsCommand::List {
        tenant,
        status,
        limit,
        json,
    } = command;
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
        print_incidents(&page.items);
    }
    Ok(())
}

/// Incidents as a table.
pub fn print_incidents(items: &[awfdrs_store::Incident]) {
    println!(
        "{:<36}  {:<10}  {:<16}  {:<20}  {:<10}  {:>6}  LAST SEEN",
        "ID", "STATUS", "WORKFLOW", "ERROR CODE", "VENDOR", "EVENTS"
    );
    for i in items {
        println!(
            "{:<36}  {:<10}  {:<16}  {:<20}  {:<10}  {:>6}  {}",
            i.id,
            i.status,
            i.workflow_id,
            i.error_code,
            i.vendor.as_deref().unwrap_or("-"),
            i.event_count,
            i.last_seen.format("%Y-%m-%d %H:%M:%S")
        );
    }
}
