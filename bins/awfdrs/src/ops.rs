//! Operator commands that read or change the database directly.

use awfdrs_config::Config;
use awfdrs_store::{IncidentFilter, Store};

use crate::cli::{AdminCommand, BreakersCommand, IncidentsCommand, TenantsCommand};

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
        TenantsCommand::RotateKey { slug } => {
            let key = awfdrs_domain::new_api_key();
            store
                .rotate_api_key(&slug, &key)
                .await
                .map_err(|e| anyhow::anyhow!("tenant {slug}: {e}"))?;
            println!("{key}");
            eprintln!(
                "tenant {slug} has a new key; the old one stops working within a second on every gateway"
            );
        }
        TenantsCommand::RevokeKey { slug } => {
            store
                .revoke_api_key(&slug)
                .await
                .map_err(|e| anyhow::anyhow!("tenant {slug}: {e}"))?;
            eprintln!(
                "tenant {slug} has no API key now (signed webhooks still work); `awfdrs tenants rotate-key {slug}` issues a new one"
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

/// `awfdrs breakers ...`
pub async fn breakers(config: Config, command: BreakersCommand) -> anyhow::Result<()> {
    let ctx = awfdrs_runtime::Context::connect(config).await?;
    ctx.prepare().await?;
    let breakers = awfdrs_guard::Breakers::open(
        &ctx.bus,
        ctx.store.clone(),
        ctx.rules.clone(),
        ctx.metrics.clone(),
        awfdrs_guard::BreakerOptions::new(format!("cli-{}", std::process::id())),
    )
    .await?;
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
