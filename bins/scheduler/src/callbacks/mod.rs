//! The scheduler's `scheduler.callbacks` task: delivers fired retry
//! commands to their workflows' HTTP callbacks.
//!
//! A round claims due deliveries (`FOR UPDATE SKIP LOCKED`, leased by
//! pushing `next_try_at` past the POST's timeout, committed at once), POSTs
//! each one outside any transaction, then records the try. The body is the
//! exact JSON published on NATS, signed with Standard Webhooks
//! (`webhook-id` = `retry:<action_id>:<attempt>`, `webhook-timestamp`,
//! `webhook-signature`) with the callback's current secret. Any 2xx is
//! delivered; anything else (redirects included: none is followed, no
//! answer, a refused address) is tried again after
//! [`awfdrs_runtime::outbound::backoff::next_delay`],
//! until `scheduler.callback_max_tries`, then `FAILED` with its reason.
//!
//! The client, the signed POST and the judgement of a try are
//! [`awfdrs_runtime::outbound`]'s, shared with the notifier: every
//! connection's addresses are checked as they are resolved (private ones
//! are refused unless `notifications.allow_private_targets`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use awfdrs_runtime::Context;
use awfdrs_runtime::outbound::{self, Answer, Signed};
use awfdrs_store::{CallbackTry, DueDelivery};
use awfdrs_telemetry::{OutcomeLabels, TaskHealth};
use chrono::Utc;
use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Deliveries claimed per round, and POSTs in flight at once.
const BATCH: i64 = 32;
const IN_FLIGHT: usize = 8;
/// The longest the task sleeps without looking for due deliveries (those
/// another scheduler's retries queued, or whose backoff ran out).
const POLL: Duration = Duration::from_secs(1);
/// Pause after a failed round.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The callbacks' client ([`outbound::client`]).
///
/// # Errors
/// When the TLS backend cannot be set up.
pub(crate) fn client(ctx: &Context) -> anyhow::Result<reqwest::Client> {
    outbound::client(
        Duration::from_millis(ctx.config.scheduler.callback_timeout_ms),
        ctx.config.notifications.allow_private_targets,
    )
}

/// Runs the delivery loop until `stop`.
pub(crate) async fn run(
    ctx: Context,
    client: reqwest::Client,
    wake: Arc<Notify>,
    health: TaskHealth,
    stop: CancellationToken,
) {
    let lease =
        Duration::from_millis(ctx.config.scheduler.callback_timeout_ms) + Duration::from_secs(30);
    while !stop.is_cancelled() {
        let wait = match ctx.store.claim_callback_deliveries(BATCH, lease).await {
            Ok(due) if !due.is_empty() => {
                health.ok();
                let full = due.len() as i64 >= BATCH;
                futures::stream::iter(due)
                    .for_each_concurrent(IN_FLIGHT, |d| deliver(&ctx, &client, d))
                    .await;
                if full {
                    continue;
                }
                Duration::ZERO
            }
            Ok(_) => {
                health.ok();
                match ctx.store.next_callback_due().await {
                    Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or_default().min(POLL),
                    Ok(None) => POLL,
                    Err(_) => ERROR_PAUSE,
                }
            }
            Err(e) => {
                warn!(error = %e, "claiming callback deliveries failed; trying again");
                health.degraded(format!("cannot claim callback deliveries: {e}"));
                ERROR_PAUSE
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
        }
    }
    info!("callback deliveries stopped");
}

/// Tries `d` once and records the outcome.
async fn deliver(ctx: &Context, client: &reqwest::Client, d: DueDelivery) {
    let started = Utc::now();
    let (url, answer) = match (&d.url, &d.secret) {
        (Some(url), Some(secret)) => {
            let clock = Instant::now();
            let answer = post(ctx, client, url, secret, &d).await;
            ctx.metrics
                .callback_seconds
                .observe(clock.elapsed().as_secs_f64());
            (url.clone(), answer)
        }
        _ => (
            String::new(),
            Answer::Failed("the callback was removed before delivery".to_owned()),
        ),
    };
    let max_tries = ctx.config.scheduler.callback_max_tries;
    let tries = u32::try_from(d.tries).unwrap_or(u32::MAX);
    let removed = d.url.is_none();
    let t = judge(&answer, tries, max_tries, removed, &d.msg_id, started);
    ctx.metrics
        .callback_deliveries
        .get_or_create(&OutcomeLabels {
            outcome: t.outcome.as_str(),
        })
        .inc();
    let url = if url.is_empty() { None } else { Some(url) };
    match ctx
        .store
        .record_callback_try(&d, url.as_deref().unwrap_or(""), &t)
        .await
    {
        Ok(true) => info!(
            tenant = %d.tenant_id,
            action = %d.action_id,
            msg_id = %d.msg_id,
            try_ = d.tries,
            status = t.status_code,
            outcome = t.outcome.as_str(),
            error = t.error.as_deref(),
            "callback try"
        ),
        Ok(false) => warn!(msg_id = %d.msg_id, "a callback try outlived its lease; not recorded"),
        Err(e) => warn!(
            msg_id = %d.msg_id,
            error = %e,
            "could not record a callback try; it is tried again when its lease ends"
        ),
    }
}

/// The try's record ([`outbound::judge`]).
fn judge(
    answer: &Answer,
    tries: u32,
    max_tries: u32,
    removed: bool,
    msg_id: &str,
    started: chrono::DateTime<Utc>,
) -> CallbackTry {
    let j = outbound::judge(answer, tries, max_tries, removed, msg_id);
    CallbackTry {
        started_at: started,
        status_code: j.status_code,
        error: j.error,
        outcome: j.outcome,
    }
}

/// POSTs the signed body once.
async fn post(
    ctx: &Context,
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    d: &DueDelivery,
) -> Answer {
    let signed = Signed {
        url,
        secret,
        msg_id: &d.msg_id,
        body: &d.body,
        allow_private: ctx.config.notifications.allow_private_targets,
    };
    outbound::post(client, signed, "the callback URL").await
}
