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
//! answer, a refused address) is tried again after [`backoff::next_delay`],
//! until `scheduler.callback_max_tries`, then `FAILED` with its reason.
//!
//! Every connection's addresses are checked as they are resolved (the
//! client's resolver refuses private ones unless
//! `notifications.allow_private_targets`), so a name that resolved to a
//! public address at registration cannot be rebound to an internal one.

pub(crate) mod backoff;

use std::sync::Arc;
use std::time::{Duration, Instant};

use awfdrs_domain::target::{check_address, parse_target};
use awfdrs_runtime::Context;
use awfdrs_store::{CallbackTry, DueDelivery, TryOutcome};
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
/// The longest error text recorded for a try.
const MAX_ERROR: usize = 512;

/// A client that follows no redirect, times out, and resolves names only
/// to addresses a target may have.
///
/// # Errors
/// When the TLS backend cannot be set up.
pub(crate) fn client(ctx: &Context) -> anyhow::Result<reqwest::Client> {
    let timeout = Duration::from_millis(ctx.config.scheduler.callback_timeout_ms);
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("awfdrs/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(CheckedResolver {
            allow_private: ctx.config.notifications.allow_private_targets,
        }))
        .build()?)
}

/// Resolves a name and refuses it when any address is not allowed.
struct CheckedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The connector sets each address's port from the URL.
            let addrs = awfdrs_runtime::targets::resolve_checked(&host, 0, allow_private)
                .await
                .map_err(|why| -> Box<dyn std::error::Error + Send + Sync> { why.into() })?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
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

/// What one POST came to.
#[derive(Debug)]
enum Answer {
    /// The receiver answered, with this status and `Retry-After`.
    Status(u16, Option<Duration>),
    /// No answer: why.
    Failed(String),
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

/// The try's record: delivered on a 2xx; otherwise tried again after the
/// backoff, unless it was the last try or there is nothing to deliver to.
fn judge(
    answer: &Answer,
    tries: u32,
    max_tries: u32,
    removed: bool,
    msg_id: &str,
    started: chrono::DateTime<Utc>,
) -> CallbackTry {
    let (status_code, error, retry_after) = match answer {
        Answer::Status(code, _) if (200..300).contains(code) => {
            return CallbackTry {
                started_at: started,
                status_code: Some(*code),
                error: None,
                outcome: TryOutcome::Delivered,
            };
        }
        Answer::Status(code, after) => (
            Some(*code),
            Some(if (300..400).contains(code) {
                format!("HTTP {code}: redirects are not followed")
            } else {
                format!("HTTP {code}")
            }),
            *after,
        ),
        Answer::Failed(why) => (None, Some(why.clone()), None),
    };
    let outcome = if removed || tries >= max_tries {
        TryOutcome::Failed
    } else {
        let delay = backoff::next_delay(tries, msg_id, retry_after);
        TryOutcome::Retried(
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
        )
    };
    let error = error.map(|e| {
        let e = if outcome == TryOutcome::Failed && !removed {
            format!(
                "{e} (gave up after {tries} {})",
                if tries == 1 { "try" } else { "tries" }
            )
        } else {
            e
        };
        cut(&e)
    });
    CallbackTry {
        started_at: started,
        status_code,
        error,
        outcome,
    }
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_ERROR {
        return s.to_owned();
    }
    let mut end = MAX_ERROR;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// POSTs the signed body once.
async fn post(
    ctx: &Context,
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    d: &DueDelivery,
) -> Answer {
    // The URL was checked when registered; its literal address (which no
    // resolver sees) is checked again here, names by the client's resolver.
    let target = match parse_target(url) {
        Ok(t) => t,
        Err(why) => return Answer::Failed(format!("the callback URL {why}")),
    };
    if let Some(ip) = target.ip
        && let Err(why) = check_address(ip, ctx.config.notifications.allow_private_targets)
    {
        return Answer::Failed(format!("the callback URL {why}"));
    }
    let ts = Utc::now().timestamp();
    let signature = match awfdrs_domain::webhook::sign(secret, &d.msg_id, ts, d.body.as_bytes()) {
        Ok(s) => s,
        Err(why) => return Answer::Failed(why.to_owned()),
    };
    let sent = client
        .post(target.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &d.msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(d.body.clone())
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| backoff::retry_after(v, Utc::now()));
            Answer::Status(resp.status().as_u16(), after)
        }
        Err(e) => Answer::Failed(describe(&e)),
    }
}

/// A client error with its causes, one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> chrono::DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn a_2xx_is_delivered_whatever_the_try() {
        for code in [200, 202, 204, 299] {
            let t = judge(&Answer::Status(code, None), 8, 8, false, "m", at());
            assert_eq!(t.outcome, TryOutcome::Delivered, "{code}");
            assert_eq!(t.error, None);
        }
    }

    #[test]
    fn other_answers_are_retried_until_the_last_try() {
        for answer in [
            Answer::Status(500, None),
            Answer::Status(302, None),
            Answer::Status(429, Some(Duration::from_secs(2))),
            Answer::Failed("could not connect".into()),
        ] {
            let t = judge(&answer, 1, 3, false, "m", at());
            assert!(matches!(t.outcome, TryOutcome::Retried(_)), "{answer:?}");
            let last = judge(&answer, 3, 3, false, "m", at());
            assert_eq!(last.outcome, TryOutcome::Failed, "{answer:?}");
            assert!(last.error.unwrap().contains("gave up after 3 tries"));
        }
        let redirect = judge(&Answer::Status(301, None), 1, 3, false, "m", at());
        assert!(
            redirect
                .error
                .unwrap()
                .contains("redirects are not followed")
        );
    }

    #[test]
    fn retry_after_sets_the_next_try_no_sooner() {
        let before = Utc::now();
        let t = judge(
            &Answer::Status(503, Some(Duration::from_secs(30))),
            1,
            8,
            false,
            "m",
            at(),
        );
        let TryOutcome::Retried(next) = t.outcome else {
            panic!("{t:?}");
        };
        assert!(next >= before + chrono::Duration::seconds(30));
    }

    #[test]
    fn a_removed_callback_fails_at_once() {
        let t = judge(&Answer::Failed("removed".into()), 1, 8, true, "m", at());
        assert_eq!(t.outcome, TryOutcome::Failed);
    }
}
