//! The notifier's `notifier.deliveries` task: POSTs queued notifications
//! to their channels.
//!
//! A round claims due notifications (`FOR UPDATE SKIP LOCKED`, leased by
//! pushing `next_try_at` past the POST's timeout, committed at once), POSTs
//! each one outside any transaction ([`awfdrs_runtime::outbound::post`],
//! signed with the channel's secret, `webhook-id` the notification's), then
//! records the try with its status code and latency. Any 2xx is delivered;
//! anything else is tried again after the backoff (no sooner than a
//! `Retry-After`) until `notifications.max_tries`, then `FAILED` with its
//! reason. A channel removed before delivery fails its notification at once.
//! Each channel takes at most its rate (a GCRA shared by every notifier in
//! JetStream KV); one over it is given back without a try, due when the
//! rate lets it go.

use std::sync::Arc;
use std::time::{Duration, Instant};

use awfdrs_guard::{Decision, RateKey};
use awfdrs_runtime::Context;
use awfdrs_runtime::outbound::{self, Answer, Signed};
use awfdrs_safety::RateLimit;
use awfdrs_store::{DueNotification, NotificationTry};
use awfdrs_telemetry::{NotificationLabels, TaskHealth};
use chrono::Utc;
use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Notifications claimed per round, and POSTs in flight at once.
const BATCH: i64 = 32;
const IN_FLIGHT: usize = 8;
/// The longest the task sleeps without looking for due notifications.
const POLL: Duration = Duration::from_secs(1);
/// Pause after a failed round.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Runs the delivery loop until `stop`.
pub(crate) async fn run(
    ctx: Context,
    client: reqwest::Client,
    wake: Arc<Notify>,
    health: TaskHealth,
    stop: CancellationToken,
) {
    let lease =
        Duration::from_millis(ctx.config.notifications.timeout_ms) + Duration::from_secs(30);
    while !stop.is_cancelled() {
        // Held back by notify_after and resolved meanwhile: never sent.
        match ctx.store.cancel_quieted().await {
            Ok(0) => {}
            Ok(n) => {
                ctx.metrics.notifications_suppressed.inc_by(n);
                info!(
                    cancelled = n,
                    "notifications not sent: their incidents resolved first"
                );
            }
            Err(e) => warn!(error = %e, "cannot cancel quieted notifications; trying again"),
        }
        let wait = match ctx.store.claim_notifications(BATCH, lease).await {
            Ok(due) if !due.is_empty() => {
                health.ok();
                let full = due.len() as i64 >= BATCH;
                futures::stream::iter(due)
                    .for_each_concurrent(IN_FLIGHT, |n| deliver(&ctx, &client, n))
                    .await;
                if full {
                    continue;
                }
                Duration::ZERO
            }
            Ok(_) => {
                health.ok();
                match ctx.store.next_notification_due().await {
                    Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or_default().min(POLL),
                    Ok(None) => POLL,
                    Err(_) => ERROR_PAUSE,
                }
            }
            Err(e) => {
                warn!(error = %e, "claiming notifications failed; trying again");
                health.degraded(format!("cannot claim notifications: {e}"));
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
    info!("notification deliveries stopped");
}

/// The metric label of a channel kind.
fn kind_label(kind: &str) -> &'static str {
    match kind {
        "slack" => "slack",
        "pagerduty" => "pagerduty",
        _ => "webhook",
    }
}

/// Whether `n`'s channel may be sent one more now, by its rate limit
/// (the channel's `rate_per_minute`, or `notifications.channel_rate_per_minute`,
/// with `notifications.channel_burst`), shared by every notifier through
/// JetStream KV; if not, `n` is given back, due when it may go.
async fn admitted(ctx: &Context, n: &DueNotification) -> bool {
    let c = &ctx.config.notifications;
    let per_minute = n
        .rate_per_minute
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(c.channel_rate_per_minute);
    let limit = RateLimit {
        retries_per_second: f64::from(per_minute) / 60.0,
        burst: c.channel_burst,
    };
    let key = RateKey::Channel(n.channel_id.to_string());
    let wait = match ctx.rate_limits.check(&key, &limit).await {
        Ok(Decision::Allow { .. }) => return true,
        Ok(Decision::Deny { retry_after }) => retry_after.min(Duration::from_secs(3600)),
        Err(e) => {
            warn!(channel = %n.channel_id, error = %e, "cannot check the channel's rate limit; waiting");
            ERROR_PAUSE
        }
    };
    let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
    ctx.metrics.notifications_rate_limited.inc();
    if let Err(e) = ctx.store.defer_notification(n, at).await {
        warn!(msg_id = %n.msg_id, error = %e, "could not defer a rate-limited notification; it is tried when its lease ends");
    }
    false
}

/// Tries `n` once and records the outcome.
async fn deliver(ctx: &Context, client: &reqwest::Client, n: DueNotification) {
    if n.url.is_some() && !admitted(ctx, &n).await {
        return;
    }
    let started = Utc::now();
    let (answer, latency) = match (&n.url, &n.secret) {
        (Some(url), Some(secret)) => {
            let clock = Instant::now();
            let signed = Signed {
                url,
                secret,
                msg_id: &n.msg_id,
                body: &n.body,
                allow_private: ctx.config.notifications.allow_private_targets,
            };
            let answer = outbound::post(client, signed, "the channel URL").await;
            let took = clock.elapsed();
            ctx.metrics.notification_seconds.observe(took.as_secs_f64());
            (
                answer,
                Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX)),
            )
        }
        (Some(_), None) => (
            Answer::Failed(
                "the channel's secret cannot be opened with the configured keys".to_owned(),
            ),
            None,
        ),
        (None, _) => (
            Answer::Failed("the channel was removed before delivery".to_owned()),
            None,
        ),
    };
    let max_tries = ctx.config.notifications.max_tries;
    let tries = u32::try_from(n.tries).unwrap_or(u32::MAX);
    let judged = outbound::judge(&answer, tries, max_tries, n.url.is_none(), &n.msg_id);
    let t = NotificationTry {
        started_at: started,
        status_code: judged.status_code,
        latency_ms: latency,
        error: judged.error,
        outcome: judged.outcome,
    };
    ctx.metrics
        .notifications
        .get_or_create(&NotificationLabels {
            kind: kind_label(&n.kind),
            outcome: t.outcome.as_str(),
        })
        .inc();
    match ctx.store.record_notification_try(&n, &t).await {
        Ok(true) => info!(
            tenant = %n.tenant_id,
            incident = %n.incident_id,
            channel = %n.channel_id,
            msg_id = %n.msg_id,
            try_ = n.tries,
            status = t.status_code,
            outcome = t.outcome.as_str(),
            error = t.error.as_deref(),
            "notification try"
        ),
        Ok(false) => {
            warn!(msg_id = %n.msg_id, "a notification try outlived its lease; not recorded")
        }
        Err(e) => warn!(
            msg_id = %n.msg_id,
            error = %e,
            "could not record a notification try; it is tried again when its lease ends"
        ),
    }
}
