//! The analysis modes: the real detector and analyzer over a history of
//! `--past-incidents` resolved incidents, fed failures that each open a new
//! incident (one workflow per failure, so one signature per failure),
//! paced at `--analysis-rate` or as fast as possible. They print incidents
//! analysed per second, from the first decision to the last, and the time
//! from an incident's opening to its decision.
//!
//! The history is written in one statement (see [`history`]): spread over
//! the workflows, vendors and codes of the load, with a few hundred
//! messages whose vectors and LSH keys are computed here, as the analyzer
//! computes them, and reused; so every new incident has candidates of the
//! same vendor and of alike messages among the past ones. The new failures'
//! codes open an incident at their first failure and do not count against
//! the vendor, so no breaker opens and every incident gets exactly one
//! decision.

mod history;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use awfdrs_bus::{Bus, Outgoing};
use awfdrs_runtime::{Context, Harness};
use awfdrs_store::Store;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::load::histogram;
use super::machine::memory_kib;
use super::outcome::window;
use super::{Bench, Mode};

/// What an analysis mode measured.
#[derive(Debug)]
pub struct Figures {
    /// Past incidents written, and how long that took with `ANALYZE`.
    pub past: u64,
    pub seeding: Duration,
    /// Incidents in the database once the past was written, of every
    /// tenant (an earlier mode's stay).
    pub in_database: u64,
    /// New incidents the events stream took, and how long sending took.
    pub sent: u64,
    pub sending: Duration,
    /// Decisions made when an incident opened.
    pub decided: u64,
    /// From the first decision recorded to the last.
    pub deciding: Duration,
    /// Incident opened -> decision recorded, in microseconds.
    pub latency: Histogram<u64>,
    /// This process's `VmRSS` and `VmHWM` at the end, in KiB.
    pub memory_kib: Option<(u64, u64)>,
}

impl Figures {
    /// Incidents analysed per second, from the first decision to the last
    /// (decisions after the first, over the time since it).
    pub fn rate(&self) -> f64 {
        self.decided.saturating_sub(1) as f64 / self.deciding.as_secs_f64().max(1e-6)
    }
}

/// New failures' codes: each opens an incident at its first failure
/// (no `open_after`) and is not the vendor's fault (no breaker opens).
const NEW_CODES: [(&str, u16); 5] = [
    ("card_declined", 402),
    ("insufficient_funds", 402),
    ("validation_error", 422),
    ("auth_failed", 401),
    ("dns_failure", 502),
];

impl Bench {
    /// Runs one analysis mode and prints its figures.
    pub(super) async fn analysis(&self, mode: Mode) -> anyhow::Result<Figures> {
        let a = &self.args;
        if a.analysis_rate == 0 || a.analysis_seconds == 0 {
            bail!("--analysis-rate and --analysis-seconds must be positive");
        }
        let ctx = Context::connect(self.config_for(mode)).await?;
        ctx.bus.declare_streams().await?;
        let slug = format!("bench-{}", mode.tag());
        let tenant = ctx
            .store
            .create_tenant(&slug, &awfdrs_domain::new_api_key())
            .await?;
        let messages = history::Messages::new(tenant.id);

        let seeding = Instant::now();
        let past = history::seed(&ctx.store, &tenant, a.past_incidents, &messages).await?;
        ctx.store.bench_analyze().await?;
        let seeding = seeding.elapsed();
        let in_database = count(ctx.store.bench_incidents_total().await?);

        let shutdown = CancellationToken::new();
        let harness = Harness::start(ctx.clone(), shutdown.clone())?;
        awfdrs_detector::start(&harness).await?;
        awfdrs_analyzer::start(&harness).await?;
        let workers = tokio::spawn(harness.run());
        // Its own connection, so waiting never takes one from the workers.
        let probe = Store::connect(self.db.url(), 1, Duration::from_secs(5)).await?;

        let n = a.analysis_rate.saturating_mul(a.analysis_seconds);
        let rate = (mode == Mode::Analysis).then_some(a.analysis_rate);
        let load = Load {
            bus: self.producer(mode).await?,
            tenant: slug,
            messages: Arc::new(messages),
        };
        let result = async {
            let (sent, sending) = load.send(n, rate, a.in_flight, self.budget()).await?;
            let stalled = Duration::from_secs(60);
            let decided = wait_decided(&probe, tenant.id, (past, sent), stalled).await?;
            let times = probe.bench_decision_times(tenant.id).await?;
            anyhow::Ok((sent, sending, decided, times))
        }
        .await;
        let memory_kib = memory_kib();
        shutdown.cancel();
        super::stop_workers(workers).await;
        probe.pool().close().await;
        ctx.store.pool().close().await;

        let (sent, sending, decided, times) = result?;
        let figures = Figures {
            past,
            seeding,
            in_database,
            sent,
            sending,
            decided,
            deciding: deciding(&times),
            latency: latencies(&times),
            memory_kib,
        };
        Ok(figures)
    }
}

/// The new failures and where they go.
struct Load {
    bus: Arc<Bus>,
    tenant: String,
    messages: Arc<history::Messages>,
}

impl Load {
    /// Publishes `n` failures, each of its own workflow, with at most
    /// `in_flight` awaiting their JetStream ack; with `rate`, failure `i`
    /// is due at `start + i / rate`. Nothing is sent after `budget`.
    /// Returns how many were acknowledged and how long sending took.
    ///
    /// # Errors
    /// When a publish fails: a missing incident would leave the figures
    /// waiting for a decision that cannot come.
    async fn send(
        &self,
        n: u64,
        rate: Option<u64>,
        in_flight: usize,
        budget: Duration,
    ) -> anyhow::Result<(u64, Duration)> {
        let acked = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(std::sync::Mutex::new(None::<String>));
        let permits = Arc::new(Semaphore::new(in_flight.max(1)));
        let started = tokio::time::Instant::now();
        for i in 0..n {
            if started.elapsed() >= budget {
                break;
            }
            if let Some(rate) = rate {
                let offset = u128::from(i) * 1_000_000_000 / u128::from(rate);
                let offset = u64::try_from(offset).unwrap_or(u64::MAX);
                tokio::time::sleep_until(started + Duration::from_nanos(offset)).await;
            }
            let permit = permits.clone().acquire_owned().await?;
            let msg = self.failure(i, Utc::now());
            let (bus, acked, failed) = (self.bus.clone(), acked.clone(), failed.clone());
            tokio::spawn(async move {
                let _permit = permit;
                match bus.publish(msg).await {
                    Ok(_) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let mut first = failed.lock().unwrap_or_else(|p| p.into_inner());
                        first.get_or_insert_with(|| e.to_string());
                    }
                }
            });
        }
        let all = u32::try_from(in_flight.max(1)).unwrap_or(u32::MAX);
        let _ = permits.acquire_many(all).await?;
        let sending = started.elapsed();
        if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bail!("publishing a failure: {e}");
        }
        Ok((acked.load(Ordering::Relaxed), sending))
    }

    /// Failure `i`, happening at `at`: workflow `new-<i>` calling one of the
    /// history's vendors, with one of its messages.
    fn failure(&self, i: u64, at: DateTime<Utc>) -> Outgoing {
        let workflow = format!("new-{i:07}");
        let (code, status) = NEW_CODES[(i % NEW_CODES.len() as u64) as usize];
        let vendor = history::vendor(i);
        let message = self.messages.text(i.wrapping_mul(13));
        let body = serde_json::json!({
            "idempotency_key": format!("analysis-{i:07}"),
            "workflow_id": workflow,
            "event_type": "step_failed",
            "occurred_at": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "workflow_run_id": format!("run-{i:07}"),
            "step": "charge",
            "vendor": vendor,
            "attempt": 1,
            "error": {
                "code": code,
                "http_status": status,
                "retryable": false,
                "message": message,
            },
        });
        Outgoing {
            subject: self.bus.ns().events_subject(&self.tenant, &workflow),
            msg_id: format!("analysis-{i:07}"),
            correlation_id: None,
            headers: Vec::new(),
            payload: Bytes::from(body.to_string()),
        }
    }
}

/// Waits until `expected` new incidents of the tenant (besides its `past`
/// ones) each have the decision of their opening, for as long as decisions
/// keep coming: it gives up only when none was made for `stalled`. Returns
/// how many decisions there are.
async fn wait_decided(
    store: &Store,
    tenant: uuid::Uuid,
    (past, expected): (u64, u64),
    stalled: Duration,
) -> anyhow::Result<u64> {
    let mut progress = (0, tokio::time::Instant::now());
    loop {
        let (incidents, decided) = store.bench_decided(tenant).await?;
        let (opened, decided) = (count(incidents).saturating_sub(past), count(decided));
        if opened >= expected && decided >= opened {
            return Ok(decided);
        }
        if decided > progress.0 {
            progress = (decided, tokio::time::Instant::now());
        } else if progress.1.elapsed() > stalled {
            bail!(
                "no decision for {stalled:?}: {opened} of {expected} incidents opened, \
                 {decided} decided"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// From the first decision recorded to the last.
fn deciding(times: &[(DateTime<Utc>, DateTime<Utc>)]) -> Duration {
    let first = times.iter().map(|t| t.1).min();
    let last = times.iter().map(|t| t.1).max();
    match (first, last) {
        (Some(first), Some(last)) => window(first, last),
        _ => Duration::ZERO,
    }
}

/// Incident opened -> decision recorded, of every decision.
fn latencies(times: &[(DateTime<Utc>, DateTime<Utc>)]) -> Histogram<u64> {
    let mut h = histogram();
    for (opened, decided) in times {
        let micros = (*decided - *opened).num_microseconds().unwrap_or(0);
        let _ = h.record(u64::try_from(micros).unwrap_or(0).max(1));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_from_opening_to_decision_and_the_window_spans_the_decisions() {
        let t0 = Utc::now();
        let ms = chrono::Duration::milliseconds;
        let times = [
            (t0, t0 + ms(40)),
            (t0 + ms(10), t0 + ms(30)),
            (t0 + ms(20), t0 + ms(1040)),
        ];
        let h = latencies(&times);
        assert_eq!(h.len(), 3);
        assert_eq!(h.min() / 1000, 20);
        assert_eq!(h.max() / 1000, 1020);
        assert_eq!(deciding(&times), Duration::from_millis(1010));
    }

    #[test]
    fn new_failures_open_at_once_and_spare_the_vendor() {
        let rules = awfdrs_rules::Rules::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/rules"
        )))
        .expect("rules load");
        for (code, _) in NEW_CODES {
            assert!(rules.known_error_code(code).is_some(), "{code}");
            let rule = rules.error_code(code);
            assert!(rule.open_after.is_none(), "{code} waits to open");
            assert!(!rule.vendor_fault, "{code} counts against the vendor");
        }
    }
}
