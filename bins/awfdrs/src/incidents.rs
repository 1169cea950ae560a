//! `awfdrs incidents ...`: reading incidents and their decisions.

use awfdrs_config::Config;
use awfdrs_domain::IncidentStatus;
use awfdrs_domain::decision::DecisionV1;
use awfdrs_store::{IncidentFilter, Store};
use clap::Subcommand;
use uuid::Uuid;

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
    /// One incident: its signature inputs, timeline and latest decision.
    Show {
        /// The incident's id.
        id: Uuid,
        /// Print the incident with every decision as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an escalated incident: no further escalation level is
    /// told of it.
    Ack {
        /// The incident's id.
        id: Uuid,
    },
    /// Why the analyzer decided what it did about an incident: the
    /// classification and its rule, the root cause with its evidence and the
    /// rejected alternative, similar incidents, the recommendation.
    Explain {
        /// The incident's id; without one, the most recently seen incident
        /// (of `--tenant`, when given).
        id: Option<Uuid>,
        /// Explain this tenant's latest incident (slug).
        #[arg(long, conflicts_with = "id")]
        tenant: Option<String>,
        /// Wait up to this many seconds for the incident and its decision.
        #[arg(long, default_value_t = 10)]
        wait: u64,
        /// Print the latest decision as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an incident command against the database.
pub async fn run(config: Config, command: IncidentsCommand) -> anyhow::Result<()> {
    match command {
        IncidentsCommand::List {
            tenant,
            status,
            limit,
            json,
        } => list(&config, tenant, status, limit, json).await,
        IncidentsCommand::Show { id, json } => show(&config, id, json).await,
        IncidentsCommand::Ack { id } => ack(&config, id).await,
        IncidentsCommand::Explain {
            id,
            tenant,
            wait,
            json,
        } => explain(&config, id, tenant, wait, json).await,
    }
}

async fn ack(config: &Config, id: Uuid) -> anyhow::Result<()> {
    let store = crate::connect::store(config).await?;
    let by = format!(
        "operator:{}",
        std::env::var("USER").unwrap_or_else(|_| "cli".to_owned())
    );
    match store.acknowledge_incident(None, id, &by).await {
        Ok(true) => println!("incident {id} acknowledged by {by}"),
        Ok(false) => println!("incident {id} was already acknowledged"),
        Err(awfdrs_store::StoreError::NotFound) => anyhow::bail!("no incident {id}"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

async fn list(
    config: &Config,
    tenant: Option<String>,
    status: Option<String>,
    limit: i64,
    json: bool,
) -> anyhow::Result<()> {
    let status = status
        .as_deref()
        .map(str::parse::<IncidentStatus>)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let store = crate::connect::store(config).await?;
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

/// The decisions about `id`, oldest first.
async fn decisions(store: &Store, id: Uuid) -> anyhow::Result<Vec<DecisionV1>> {
    store
        .decisions(None, id)
        .await?
        .into_iter()
        .map(|body| serde_json::from_value(body).map_err(anyhow::Error::from))
        .collect()
}

async fn show(config: &Config, id: Uuid, json: bool) -> anyhow::Result<()> {
    let store = crate::connect::store(config).await?;
    let detail = match store.incident(None, id).await {
        Err(awfdrs_store::StoreError::NotFound) => anyhow::bail!("no incident {id}"),
        r => r?,
    };
    let inputs = store.signature_inputs(None, id).await?;
    let decisions = decisions(&store, id).await?;
    if json {
        let mut body = serde_json::to_value(&detail)?;
        if let Some(o) = body.as_object_mut() {
            o.insert("signature_inputs".into(), serde_json::json!(inputs));
            o.insert("decisions".into(), serde_json::json!(decisions));
        }
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let i = &detail.incident;
    println!("incident {}  {}", i.id, i.status.as_str());
    println!(
        "  {} events, first {} last {}",
        i.event_count,
        i.first_seen.format("%Y-%m-%d %H:%M:%S"),
        i.last_seen.format("%Y-%m-%d %H:%M:%S")
    );
    println!("timeline:");
    for t in &detail.timeline {
        println!(
            "  {}  {} -> {}  by {}: {}",
            t.at.format("%Y-%m-%d %H:%M:%S"),
            t.from_status.map_or("-", |s| s.as_str()),
            t.to_status.as_str(),
            t.actor,
            t.reason
        );
    }
    match decisions.last() {
        Some(d) => print!("{}", awfdrs_analysis::explain::render(d)),
        None => {
            if let Some(s) = inputs {
                println!(
                    "grouped by: tenant {}, workflow {}, error code {:?} (normalised {}), vendor {}, step {}",
                    s.tenant,
                    s.workflow_id,
                    s.error_code_raw,
                    s.error_code,
                    s.vendor.as_deref().unwrap_or("-"),
                    s.step.as_deref().unwrap_or("-")
                );
            }
            println!("no decision yet");
        }
    }
    Ok(())
}

async fn explain(
    config: &Config,
    id: Option<Uuid>,
    tenant: Option<String>,
    wait: u64,
    json: bool,
) -> anyhow::Result<()> {
    let store = crate::connect::store(config).await?;
    let tenant_id = match &tenant {
        Some(slug) => Some(
            store
                .tenant_by_slug(slug)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no tenant {slug:?}"))?
                .id,
        ),
        None => None,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
    let (id, latest) = loop {
        let incident = match id {
            Some(id) => store.signature_inputs(None, id).await?.map(|_| id),
            None => store
                .list_incidents(&IncidentFilter {
                    tenant: tenant_id,
                    limit: 1,
                    ..IncidentFilter::default()
                })
                .await?
                .items
                .first()
                .map(|i| i.id),
        };
        let latest = match incident {
            Some(i) => decisions(&store, i).await?.pop(),
            None => None,
        };
        match (incident, latest) {
            (Some(i), Some(d)) => break (i, d),
            _ if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            (None, _) => match id {
                Some(id) => anyhow::bail!("no incident {id}"),
                None => anyhow::bail!("no incident yet"),
            },
            (Some(i), None) => anyhow::bail!("incident {i} has no decision yet"),
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&latest)?);
    } else {
        println!("incident {id}");
        print!("{}", awfdrs_analysis::explain::render(&latest));
    }
    Ok(())
}
