//! `awfdrs tenants ...`: tenants, their API keys and webhook secrets.

use awfdrs_config::Config;
use clap::Subcommand;

/// The tenant commands.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant and print its API key (alone, on stdout).
    Create { slug: String },
    /// List tenants.
    List,
    /// Set (or rotate) the tenant's Standard Webhooks signing secret and print it.
    WebhookSecret { slug: String },
    /// Give the tenant a new API key and print it (alone, on stdout); the
    /// old key stops working within about a second on every gateway.
    RotateKey { slug: String },
    /// Revoke the tenant's API key, leaving it none until `rotate-key`.
    RevokeKey { slug: String },
}

/// Runs a tenant command against the database.
pub async fn run(config: Config, command: TenantsCommand) -> anyhow::Result<()> {
    let store = crate::connect::store(&config).await?;
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
            let secret = awfdrs_domain::webhook::new_secret();
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
