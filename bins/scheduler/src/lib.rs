//! The retry scheduler: fires each due retry once, at its time.
//!
//! Due retries are rows of `actions` (`SCHEDULED`, not shadow). A round
//! claims the due ones with `FOR UPDATE SKIP LOCKED` in the transaction that
//! fires them: it writes each retry command
//! (`<ns>.commands.<tenant>.<workflow>.retry`, an `awfdrs_domain::RetryCommandV1`
//! with message id `retry:<action_id>:<attempt>`) to the outbox and marks the
//! action `EXECUTING`; the relay publishes after the commit. Several
//! schedulers share the work, and one killed before its commit leaves its
//! retries due for the others: each is fired once in effect.
//!
//! A due retry whose vendor's breaker does not let retries through is not
//! fired but deferred ([`breakers`]).
//!
//! Between rounds it sleeps until the nearest due retry, woken early when
//! the coordinator schedules a nearer one (PostgreSQL `LISTEN`), never
//! longer than `scheduler.max_sleep_ms`.
//!
//! A retry whose workflow has an HTTP callback also gets a delivery row in
//! the firing transaction; the [`callbacks`] task POSTs it there, signed,
//! with backoff, and records every try.

mod breakers;
mod callbacks;

use std::sync::Arc;
use std::time::Duration;

use awfdrs_domain::RetryCommandV1;
use awfdrs_runtime::{Context, Harness, Relay, retry_transient};
use awfdrs_store::{NewOutbox, StoreError};
use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The actor the scheduler's timeline entries name.
pub const ACTOR: &str = "scheduler";

/// Pause after a round that found due retries but could claim none.
const BUSY_PAUSE: Duration = Duration::from_millis(50);

/// Pause after a failed round (the database is down, say).
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Starts the scheduler's loop and its callback deliveries in `harness`,
/// publishing through the harness's outbox relay.
///
/// # Errors
/// When the callbacks' HTTP client cannot be built; the loops report their
/// own trouble.
#[allow(clippy::unused_async)]
pub async fn start(harness: &Harness) -> anyhow::Result<()> {
    let ctx = harness.ctx().clone();
    let relay = harness.relay();
    let queued = Arc::new(Notify::new());
    let client = callbacks::client(&ctx)?;
    let health = ctx.health.task("scheduler.callbacks");
    let (c, wake) = (ctx.clone(), queued.clone());
    harness.spawn("scheduler.callbacks", |stop| async move {
        callbacks::run(c, client, wake, health, stop).await;
        Ok(())
    });
    let health = ctx.health.task("scheduler.loop");
    harness.spawn("scheduler.loop", |stop| async move {
        run(ctx, relay, queued, health, stop).await;
        Ok(())
    });
    Ok(())
}

async fn run(
    ctx: Context,
    relay: Relay,
    queued: Arc<Notify>,
    health: awfdrs_telemetry::TaskHealth,
    stop: CancellationToken,
) {
    let max_sleep = Duration::from_millis(ctx.config.scheduler.max_sleep_ms);
    let mut listener = None;
    while !stop.is_cancelled() {
        if listener.is_none() {
            match ctx.store.listen_retries().await {
                Ok(l) => listener = Some(l),
                Err(e) => warn!(error = %e, "cannot listen for scheduled retries; polling"),
            }
        }
        let fired = fire_due(&ctx, &relay, &queued).await;
        let wait = match &fired {
            Ok(n) if *n as i64 >= ctx.config.scheduler.batch_size => Duration::ZERO,
            Ok(n) => {
                health.ok();
                let wait = match ctx.store.next_due().await {
                    Ok(Some(due)) => (due - Utc::now())
                        .to_std()
                        .unwrap_or_default()
                        .min(max_sleep),
                    Ok(None) => max_sleep,
                    Err(_) => ERROR_PAUSE,
                };
                // A due retry this round could not claim is another
                // scheduler's, about to commit: do not spin on it.
                if *n == 0 { wait.max(BUSY_PAUSE) } else { wait }
            }
            Err(e) => {
                warn!(error = %e, "firing due retries failed; trying again");
                health.degraded(format!("cannot fire due retries: {e}"));
                ERROR_PAUSE
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
            woke = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            } => {
                if let Err(e) = woke {
                    warn!(error = %e, "the retry listener failed; listening again");
                    listener = None;
                }
            }
        }
    }
    info!("scheduler stopped");
}

/// One round: fires every retry due now (at most `scheduler.batch_size`),
/// queueing the callback deliveries of those whose workflow has one (and
/// waking the delivery task); returns how many it fired.
async fn fire_due(ctx: &Context, relay: &Relay, queued: &Notify) -> Result<usize, StoreError> {
    let once = || async {
        let now = Utc::now();
        let mut work = ctx.store.begin_work().await?;
        let due = work
            .claim_due_retries(now, ctx.config.scheduler.batch_size)
            .await?;
        let mut commands = Vec::with_capacity(due.len());
        let mut fired = Vec::with_capacity(due.len());
        let mut callbacks = 0usize;
        for r in &due {
            match breakers::at_fire(ctx, r, now).await {
                Ok(breakers::AtFire::Fire) => {}
                Ok(breakers::AtFire::Defer {
                    until,
                    why,
                    breaker,
                }) => {
                    work.defer_retry(r, until, &why, breaker).await?;
                    continue;
                }
                // The rate limit could not be asked: looked at again next round.
                Err(e) => {
                    warn!(retry = %r.id, error = %e, "cannot pace a deferred retry; trying again");
                    continue;
                }
            }
            fired.push(r);
            let command = RetryCommandV1 {
                action_id: r.id,
                incident_id: r.incident_id,
                tenant: r.tenant.clone(),
                workflow_id: r.workflow_id.clone(),
                workflow_run_id: r.workflow_run_id.clone(),
                step: r.step.clone(),
                vendor: r.vendor.clone(),
                attempt: u32::try_from(r.attempt).unwrap_or(0),
                idempotency_key: r.idempotency_key.clone(),
                correlation_id: r.correlation_id.clone(),
                due_at: r.due_at,
                issued_at: now,
            };
            work.mark_fired(
                r,
                now,
                ACTOR,
                &format!("retry command {} published", command.msg_id()),
            )
            .await?;
            let payload = serde_json::to_value(&command).unwrap_or_default();
            // The callback gets the bytes the relay publishes.
            callbacks += usize::from(
                work.queue_callback(
                    r.tenant_id,
                    r.id,
                    r.attempt,
                    &r.workflow_id,
                    &command.msg_id(),
                    &payload.to_string(),
                )
                .await?,
            );
            commands.push(NewOutbox {
                tenant_id: r.tenant_id,
                subject: ctx.bus.ns().retry_command(&r.tenant, &r.workflow_id),
                msg_id: command.msg_id(),
                payload,
                correlation_id: Some(r.correlation_id.clone()),
            });
        }
        let n = commands.len();
        work.outbox(commands).await?;
        let committed = work.commit().await?;
        if callbacks > 0 {
            queued.notify_one();
        }
        for r in fired {
            let late = (now - r.due_at).num_milliseconds().max(0) as f64 / 1000.0;
            ctx.metrics.scheduler_lateness_seconds.observe(late);
        }
        Ok::<_, StoreError>((n, committed))
    };
    let (n, committed) = retry_transient("retry round", once).await?;
    ctx.metrics.retry_commands.inc_by(n as u64);
    relay.publish(committed).await;
    Ok(n)
}
