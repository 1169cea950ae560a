//! `awfdrs channels add|list|remove`: a tenant's notification channels,
//! added with the same checks as `POST /api/v1/channels` (the URL's syntax,
//! and its addresses unless `notifications.allow_private_targets`; a
//! routing key for pagerduty and only for it).

use awfdrs_config::Config;
use awfdrs_runtime::targets::check_target;
use awfdrs_store::NewChannel;
use clap::{Subcommand, ValueEnum};
use uuid::Uuid;

/// A channel's kind.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Webhook,
    Slack,
    Pagerduty,
}

/// The least severity a channel is told of.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MinSeverity {
    Low,
    Medium,
    High,
    Critical,
}

/// The channel commands.
#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Add a channel at the end of the tenant's order; prints its id and
    /// then its signing secret alone on the last line of stdout.
    Add {
        /// A name for people.
        name: String,
        /// Where notifications are POSTed (http or https).
        url: String,
        /// The tenant (slug).
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum, default_value = "webhook")]
        kind: Kind,
        #[arg(long, value_enum, default_value = "low")]
        min_severity: MinSeverity,
        /// The PagerDuty integration key (pagerduty only).
        #[arg(long)]
        routing_key: Option<String>,
        /// Its escalation level, 1 (told first) to 10.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=10))]
        level: i32,
        /// Milliseconds its level waits for an acknowledgement before the
        /// next level is told (1000 to 604800000); default
        /// `notifications.escalate_after_ms`.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1000..=604_800_000))]
        escalate_after_ms: Option<i64>,
        /// The most deliveries per minute it is sent (1 to 6000); default
        /// `notifications.channel_rate_per_minute`.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=6000))]
        rate_per_minute: Option<i32>,
    },
    /// List the tenant's channels, in order.
    List {
        /// The tenant (slug).
        #[arg(long)]
        tenant: String,
    },
    /// Remove a channel.
    Remove {
        /// The channel's id.
        id: Uuid,
        /// The tenant (slug).
        #[arg(long)]
        tenant: String,
    },
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Pagerduty => "pagerduty",
        }
    }
}

impl MinSeverity {
    fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// Runs a channel command against the database.
pub async fn run(config: Config, command: ChannelsCommand) -> anyhow::Result<()> {
    let store = crate::connect::store(&config).await?;
    let slug = match &command {
        ChannelsCommand::Add { tenant, .. }
        | ChannelsCommand::List { tenant }
        | ChannelsCommand::Remove { tenant, .. } => tenant.clone(),
    };
    let tenant = store
        .tenant_by_slug(&slug)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant {slug:?}"))?
        .id;
    match command {
        ChannelsCommand::Add {
            name,
            url,
            kind,
            min_severity,
            routing_key,
            level,
            escalate_after_ms,
            rate_per_minute,
            ..
        } => {
            if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
                anyhow::bail!("the name must be 1 to 100 bytes without control characters");
            }
            match (kind, &routing_key) {
                (Kind::Pagerduty, None) => {
                    anyhow::bail!("a pagerduty channel needs --routing-key")
                }
                (Kind::Pagerduty, Some(k))
                    if k.trim().is_empty() || k.len() > 128 || k.chars().any(char::is_control) =>
                {
                    anyhow::bail!(
                        "the routing key must be 1 to 128 bytes without control characters"
                    )
                }
                (Kind::Webhook | Kind::Slack, Some(_)) => {
                    anyhow::bail!("--routing-key is only for a pagerduty channel")
                }
                _ => {}
            }
            let target = check_target(&url, config.notifications.allow_private_targets)
                .await
                .map_err(|why| anyhow::anyhow!("the URL {why}"))?;
            let secret = awfdrs_domain::webhook::new_secret();
            let c = store
                .add_channel(&NewChannel {
                    tenant_id: tenant,
                    name: &name,
                    kind: kind.as_str(),
                    url: target.url.as_str(),
                    secret: &secret,
                    min_severity: min_severity.as_str(),
                    routing_key: routing_key.as_deref(),
                    level,
                    escalate_after_ms,
                    rate_per_minute,
                })
                .await?;
            eprintln!("{} channel {:?} of {slug} added: {}", c.kind, c.name, c.url);
            println!("{}", c.id);
            println!("{secret}");
        }
        ChannelsCommand::List { .. } => {
            let channels = store.channels(tenant).await?;
            println!(
                "{:<36}  {:>5}  {:<10}  {:<9}  {:<20}  URL",
                "ID", "LEVEL", "KIND", "SEVERITY", "NAME"
            );
            for c in channels {
                println!(
                    "{:<36}  {:>5}  {:<10}  {:<9}  {:<20}  {}",
                    c.id, c.level, c.kind, c.min_severity, c.name, c.url
                );
            }
        }
        ChannelsCommand::Remove { id, .. } => {
            if !store.remove_channel(tenant, id).await? {
                anyhow::bail!("{slug} has no channel {id}");
            }
            println!("channel {id} of {slug} removed");
        }
    }
    Ok(())
}
