//! Accepting validated events: reserve their idempotency keys, publish the
//! new ones, commit the reservations of those the broker stored, and give
//! each event its fate (repeats of a tenant's key within one settlement
//! share their first occurrence's). A batch request is one settlement; so
//! is a group of concurrent single-event requests (`group`), whose events
//! may be of several tenants.

use std::collections::HashMap;

use awfdrs_bus::{Outgoing, headers};
use awfdrs_domain::{event_id, printable};
use awfdrs_runtime::Context;
use awfdrs_store::{Claimed, KeyClaim, Tenant};
use awfdrs_telemetry::SourceLabels;
use tracing::{Instrument, error, warn};
use uuid::Uuid;

use super::Ready;
use super::answer::{Accepted, Fate};
use crate::{AppState, Problem};

/// Reserves the keys, publishes the new events, commits the reservations
/// of those the broker acked. One fate per event, in order.
///
/// The work runs in its own task, so a client that goes away (or a timeout
/// that drops this future) cannot cut it between the reservation and its
/// commit or rollback: no transaction is left open, no key half-reserved.
pub(super) async fn accept(
    state: &AppState,
    tenant: &Tenant,
    ready: Vec<Ready>,
) -> Result<Vec<Fate>, Problem> {
    let items = ready.into_iter().map(|r| (tenant.clone(), r)).collect();
    spawn_settle(state.ctx().clone(), items).await
}

/// Settles `items` in a task of their own (see [`accept`]).
pub(super) async fn spawn_settle(
    ctx: Context,
    items: Vec<(Tenant, Ready)>,
) -> Result<Vec<Fate>, Problem> {
    // Boxed: the settlement's state is some 13 KiB, which tokio would
    // otherwise move on each step of spawning it.
    let task = tokio::spawn(Box::pin(settle(ctx, items)).instrument(tracing::Span::current()));
    task.await.unwrap_or_else(|e| {
        error!(error = %e, "ingestion task failed");
        Err(Problem::internal("the event could not be processed"))
    })
}

/// Where each event of a request stands once its key is settled.
enum Slot {
    /// The first event with its key: `claims[.0]`.
    Claim(usize),
    /// A later event with the tenant and key of `items[first]`, settled by
    /// `claims[claim]`.
    Repeat { first: usize, claim: usize },
}

/// What became of one distinct key of the request.
#[derive(Clone)]
enum KeyFate {
    Accepted,
    NotPublished(String),
    Duplicate {
        event_id: Uuid,
        correlation_id: String,
    },
    Conflict {
        event_id: Uuid,
    },
}

async fn settle(ctx: Context, items: Vec<(Tenant, Ready)>) -> Result<Vec<Fate>, Problem> {
    let ctx = &ctx;
    // Without the broker nothing can be accepted: answer at once rather
    // than hold a database connection through the publish timeout.
    if !ctx.bus.is_connected() {
        return Err(Problem::unavailable(
            "the message broker cannot be reached; nothing was accepted",
        ));
    }
    let ids: Vec<Uuid> = items
        .iter()
        .map(|(t, r)| event_id(&t.slug, &r.event.event.idempotency_key))
        .collect();
    let mut first: HashMap<(Uuid, &str), (usize, usize)> = HashMap::new();
    let mut slots = Vec::with_capacity(items.len());
    let mut claims: Vec<(usize, KeyClaim)> = Vec::new();
    for (i, (tenant, r)) in items.iter().enumerate() {
        let key = r.event.event.idempotency_key.as_str();
        if let Some(&(first, claim)) = first.get(&(tenant.id, key)) {
            slots.push(Slot::Repeat { first, claim });
            continue;
        }
        first.insert((tenant.id, key), (i, claims.len()));
        slots.push(Slot::Claim(claims.len()));
        claims.push((
            i,
            KeyClaim {
                tenant: tenant.id,
                key: key.to_owned(),
                event_id: ids[i],
                body_hash: r.event.body_hash.0.to_vec(),
                correlation_id: r.correlation_id.clone(),
                reservation: Uuid::new_v4(),
            },
        ));
    }
    let key_claims: Vec<KeyClaim> = claims.iter().map(|(_, c)| c.clone()).collect();
    let (answers, reservation) = ctx.store.reserve_keys(&key_claims).await.map_err(|e| {
        warn!(error = %e, "key reservation failed");
        Problem::unavailable("the database cannot take the event now")
    })?;

    let mut key_fates: Vec<KeyFate> = answers
        .into_iter()
        .map(|a| match a {
            Claimed::New => KeyFate::Accepted,
            Claimed::Duplicate {
                event_id,
                correlation_id,
            } => KeyFate::Duplicate {
                event_id,
                correlation_id,
            },
            Claimed::Conflict { event_id } => KeyFate::Conflict { event_id },
        })
        .collect();
    let fresh: Vec<usize> = (0..claims.len())
        .filter(|&c| matches!(key_fates[c], KeyFate::Accepted))
        .collect();
    let outgoing = fresh
        .iter()
        .map(|&c| {
            let (i, claim) = &claims[c];
            let (tenant, r) = &items[*i];
            Outgoing {
                subject: ctx
                    .bus
                    .ns()
                    .events_subject(&tenant.slug, &r.event.event.workflow_id),
                // Random per reservation: nobody can publish ahead of us
                // with this id and have the broker drop ours as a duplicate.
                msg_id: claim.reservation.to_string(),
                correlation_id: Some(r.correlation_id.clone()),
                headers: vec![
                    (headers::SOURCE, "http".to_owned()),
                    (headers::RESERVATION, claim.reservation.to_string()),
                ],
                payload: r.canonical.clone(),
            }
        })
        .collect();
    let published = ctx.bus.publish_many(outgoing).await;
    let mut failed_keys = Vec::new();
    for (&c, result) in fresh.iter().zip(published) {
        let why = match result {
            Ok(p) if !p.duplicate => continue,
            // The broker holds another message with this id: ours was not
            // stored, whatever the ack says.
            Ok(_) => "the broker reported the message as a duplicate".to_owned(),
            Err(e) => e.to_string(),
        };
        ctx.metrics.publish_failures.inc();
        warn!(error = %why, key = %printable(&claims[c].1.key), "publish failed; the key is released");
        failed_keys.push((claims[c].1.tenant, claims[c].1.key.clone()));
        key_fates[c] = KeyFate::NotPublished(why);
    }
    // Committing keeps the reservations of what the broker stored; a
    // reservation rolled back (here or by a failed commit) makes the detector
    // drop its message should the broker still deliver it.
    if let Err(e) = reservation.commit(&failed_keys).await {
        warn!(error = %e, "key reservation commit failed");
        return Err(Problem::unavailable(
            "the database cannot take the event now; nothing was accepted",
        ));
    }

    Ok(items
        .iter()
        .zip(slots)
        .enumerate()
        .map(|(i, ((_, r), slot))| match slot {
            Slot::Claim(c) => key_fate(ctx, r, ids[i], key_fates[c].clone()),
            Slot::Repeat { first, .. } if items[first].1.event.body_hash != r.event.body_hash => {
                Fate::Rejected(conflict(r, ids[first]))
            }
            // The same body again: it shares its first occurrence's fate,
            // as a duplicate when that one was accepted.
            Slot::Repeat { first, claim } => match key_fates[claim].clone() {
                KeyFate::Accepted => {
                    duplicate(ctx, ids[first], items[first].1.correlation_id.clone())
                }
                other => key_fate(ctx, r, ids[first], other),
            },
        })
        .collect())
}

fn key_fate(ctx: &Context, r: &Ready, id: Uuid, fate: KeyFate) -> Fate {
    match fate {
        KeyFate::Accepted => {
            ctx.metrics
                .events_accepted
                .get_or_create(&SourceLabels { source: "http" })
                .inc();
            Fate::Accepted(Accepted {
                event_id: id,
                correlation_id: r.correlation_id.clone(),
                duplicate: false,
            })
        }
        KeyFate::NotPublished(why) => not_published(&why),
        KeyFate::Duplicate {
            event_id,
            correlation_id,
        } => duplicate(ctx, event_id, correlation_id),
        KeyFate::Conflict { event_id } => Fate::Rejected(conflict(r, event_id)),
    }
}

fn not_published(why: &str) -> Fate {
    Fate::Rejected(Problem::unavailable(format!(
        "the message broker cannot take the event now ({why}); nothing was accepted"
    )))
}

fn duplicate(ctx: &Context, event_id: Uuid, correlation_id: String) -> Fate {
    ctx.metrics
        .events_duplicate
        .get_or_create(&SourceLabels { source: "http" })
        .inc();
    Fate::Duplicate(Accepted {
        event_id,
        correlation_id,
        duplicate: true,
    })
}

fn conflict(r: &Ready, first: Uuid) -> Problem {
    Problem::conflict(format!(
        "idempotency key {:?} was already used for event {first} with a different body",
        r.event.event.idempotency_key
    ))
}
