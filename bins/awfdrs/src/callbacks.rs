//! `awfdrs callbacks set|remove`: a workflow's HTTP callback, registered
//! with the same checks as `PUT /api/v1/workflows/{workflow_id}/callback`
//! (the URL's syntax, and its addresses unless
//! `notifications.allow_private_targets`).

use awfdrs_config::Config;
use awfdrs_runtime::targets::check_target;
use clap::Subcommand;

/// The callback commands.
#[derive(Debug, Subcommand)]
pub enum CallbacksCommand {
    /// Register (or replace) a workflow's callback; prints its new signing
    /// secret alone on stdout.
    Set {
        /// The workflow (slug).
        workflow: String,
        /// Where its retry commands are POSTed (http or https).
        url: String,
        /// The tenant (slug).
        #[arg(long)]
        tenant: String,
    },
    /// Remove a workflow's callback.
    Remove {
        /// The workflow (slug).
        workflow: String,
        /// The tenant (slug).
        #[arg(long)]
        tenant: String,
    },
}

/// Runs a callback command against the database.
pub async fn run(config: Config, command: CallbacksCommand) -> anyhow::Result<()> {
    let store = crate::connect::store(&config).await?;
    let (slug, workflow) = match &command {
        CallbacksCommand::Set {
            tenant, workflow, ..
        }
        | CallbacksCommand::Remove { tenant, workflow } => (tenant.clone(), workflow.clone()),
    };
    let (slug, workflow) = (slug.as_str(), workflow.as_str());
    if !awfdrs_domain::is_slug(workflow) {
        anyhow::bail!("the workflow {workflow:?} is not a slug ([a-z0-9][a-z0-9_-]{{0,62}})");
    }
    let tenant = store
        .tenant_by_slug(slug)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant {slug:?}"))?
        .id;
    match command {
        CallbacksCommand::Set { ref url, .. } => {
            let target = check_target(url, config.notifications.allow_private_targets)
                .await
                .map_err(|why| anyhow::anyhow!("the URL {why}"))?;
            let secret = awfdrs_domain::webhook::new_secret();
            let set = store
                .set_callback(tenant, workflow, target.url.as_str(), &secret)
                .await?;
            eprintln!("callback of {slug}/{} set to {}", set.workflow_id, set.url);
            println!("{secret}");
        }
        CallbacksCommand::Remove { .. } => {
            if !store.remove_callback(tenant, workflow).await? {
                anyhow::bail!("the workflow {workflow} of {slug} has no callback");
            }
            println!("callback of {slug}/{workflow} removed");
        }
    }
    Ok(())
}
