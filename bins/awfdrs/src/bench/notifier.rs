//! The notifier mode: the real notifier, measured from outside.
//!
//! `--escalations` incidents are written with their recorded decisions
//! (as the remediation modes write them), and the tenant gets two level-1
//! channels ([`CHANNELS`]) on local receivers ([`receive`]) that check every
//! signature. Then one escalation per incident is published on
//! `<ns>.escalations.<tenant>` as the coordinator's relay publishes it,
//! at `--escalation-rate` or as fast as `--in-flight` allows, and the
//! notifier runs until every
//! notification has arrived and is recorded `DELIVERED`. Figures:
//! notifications per second, escalation published -> notification
//! received, and the correctness checks: every notification delivered
//! once per `webhook-id`, signatures verified, one try each.

pub(super) mod receive;

use std::collections::HashMap;
use std::time::Duration;

use awfdrs_bus::Outgoing;
use awfdrs_domain::action::EscalationV1;
use awfdrs_domain::decision::{ActionKind, DecisionV1};
use awfdrs_runtime::{Context, Harness};
use awfdrs_store::{BenchNotificationOutcome, NewChannel, notification_id};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use super::load::histogram;
use super::machine::memory_kib;
use super::outcome::window;
use super::remediation::{seed, watch};
use super::{Bench, Mode};

/// The tenant's channels: (name, kind), all of level 1.
pub const CHANNELS: [(&str, &str); 2] = [("oncall", "webhook"), ("pager", "pagerduty")];

/// The PagerDuty channel's routing key.
const ROUTING_KEY: &str = "bench0routing0key000000000000000";

/// How long the mode waits without progress before it gives up.
const STALLED: Duration = Duration::from_secs(60);

/// What the notifier mode measured.
#[derive(Debug)]
pub struct Figures {
    pub escalations: u64,
    /// Incidents and channels written, and how long that took.
    pub seeding: Duration,
    /// How long publishing the escalations took.
    pub publishing: Duration,
    /// Notifications due: one per escalation and channel.
    pub expected: u64,
    /// Distinct `webhook-id`s received; received again; not ours.
    pub received: u64,
    pub repeated: u64,
    pub unknown: u64,
    /// Deliveries whose signature did not verify.
    pub unverified: u64,
    /// From the first notification's arrival to the last's.
    pub receiving: Duration,
    /// Escalation published -> notification received, in microseconds.
    pub latency: Histogram<u64>,
    /// The notifications as recorded, by status, with their tries.
    pub outcomes: Vec<BenchNotificationOutcome>,
    /// This process's `VmRSS` and `VmHWM` at the end, in KiB.
    pub memory_kib: Option<(u64, u64)>,
}

/// The escalation the coordinator announces for decision `d`.
fn escalation(d: &DecisionV1, at: DateTime<Utc>) -> EscalationV1 {
    let s = &d.signature_inputs;
    EscalationV1 {
        action_id: awfdrs_domain::action_id(d.incident_id, ActionKind::Escalate, 0),
        incident_id: d.incident_id,
        decision_id: d.id,
        tenant_id: d.tenant_id,
        tenant: d.tenant.clone(),
        workflow_id: s.workflow_id.clone(),
        error_code: s.error_code.clone(),
        vendor: s.vendor.clone(),
        severity: d.classification.severity,
        level: 1,
        reason: "escalated by the benchmark".to_owned(),
        stopped_by: None,
        correlation_id: d.correlation_id.clone(),
        at,
    }
}

impl Bench {
    /// Runs the `notifier` mode.
    pub(super) async fn notifier(&self) -> anyhow::Result<Figures> {
        let a = &self.args;
        let mode = Mode::Notifier;
        let mut config = self.config_for(mode);
        // The receivers listen on loopback.
        config.notifications.allow_private_targets = true;
        // The notifier's speed, not a channel's rate limit or a group's wait.
        config.notifications.channel_rate_per_minute = 60_000;
        config.notifications.channel_burst = 10_000;
        config.notifications.group_window_ms = 0;
        let ctx = Context::connect(config).await?;
        ctx.bus.declare_streams().await?;
        let slug = format!("bench-{}", mode.tag());
        let tenant = ctx
            .store
            .create_tenant(&slug, &awfdrs_domain::new_api_key())
            .await?;
        let n = a.escalations;
        let seeding = tokio::time::Instant::now();
        let decisions = seed::decided(&ctx.store, (tenant.id, &slug), n).await?;
        let secrets: Vec<String> = CHANNELS
            .iter()
            .map(|_| awfdrs_domain::webhook::new_secret())
            .collect();
        let receivers = receive::Receivers::start(&secrets).await?;
        let mut channels = Vec::new();
        for (((name, kind), secret), url) in CHANNELS.iter().zip(&secrets).zip(&receivers.urls) {
            let c = NewChannel {
                tenant_id: tenant.id,
                name,
                kind,
                url,
                secret,
                min_severity: "low",
                routing_key: (*kind == "pagerduty").then_some(ROUTING_KEY),
                level: 1,
                escalate_after_ms: None,
                rate_per_minute: None,
            };
            channels.push(ctx.store.add_channel(&c).await?.id);
        }
        ctx.store.bench_vacuum().await?;
        let seeding = seeding.elapsed();

        // Which escalation each notification's webhook-id comes of.
        let mut of: HashMap<String, usize> = HashMap::new();
        for (i, d) in decisions.iter().enumerate() {
            for c in &channels {
                let id = notification_id(d.incident_id, *c, 1, "incident.escalated");
                of.insert(format!("notification:{id}"), i);
            }
        }
        let producer = self.producer(mode).await?;
        let now = Utc::now();
        let mut messages = Vec::with_capacity(decisions.len());
        for d in &decisions {
            let e = escalation(d, now);
            messages.push(Outgoing {
                subject: producer.ns().escalations(&e.tenant),
                msg_id: e.msg_id(),
                correlation_id: Some(e.correlation_id.clone()),
                headers: Vec::new(),
                payload: Bytes::from(serde_json::to_vec(&e)?),
            });
        }

        let shutdown = CancellationToken::new();
        let harness = Harness::start(ctx.clone(), shutdown.clone())?;
        awfdrs_notifier::start(&harness).await?;
        let workers = tokio::spawn(harness.run());
        let expected = n * channels.len() as u64;
        let rate = Some(a.escalation_rate).filter(|r| *r > 0);
        let result = async {
            let (sent, publishing) =
                watch::publish_messages(&producer, messages, rate, a.in_flight).await?;
            let start = tokio::time::Instant::now();
            watch::wait_for(
                expected,
                start,
                STALLED,
                "notifications received",
                || async { Ok(receivers.seen()) },
            )
            .await?;
            // Received before the notifier records the try: wait for that too.
            let store = &ctx.store;
            let delivered = |o: &[BenchNotificationOutcome]| {
                o.iter()
                    .filter(|x| x.status == "DELIVERED")
                    .map(|x| u64::try_from(x.notifications).unwrap_or(0))
                    .sum::<u64>()
            };
            watch::wait_for(
                expected,
                start,
                STALLED,
                "notifications recorded",
                || async {
                    Ok(delivered(
                        &store.bench_notification_outcomes(tenant.id).await?,
                    ))
                },
            )
            .await?;
            let outcomes = store.bench_notification_outcomes(tenant.id).await?;
            anyhow::Ok((sent, publishing, outcomes))
        }
        .await;
        let memory_kib = memory_kib();
        shutdown.cancel();
        super::stop_workers(workers).await;
        let received = receivers.stop();
        ctx.store.pool().close().await;
        let (sent, publishing, outcomes) = result?;

        let mut latency = histogram();
        let mut unknown = 0;
        for (id, at) in &received.first {
            match of.get(id).and_then(|i| sent.get(*i)) {
                Some(published) => {
                    let us = (*at - *published).num_microseconds().unwrap_or(0);
                    let _ = latency.record(u64::try_from(us).unwrap_or(0).max(1));
                }
                None => unknown += 1,
            }
        }
        let (first, last) = (
            received.first.values().min().copied(),
            received.first.values().max().copied(),
        );
        Ok(Figures {
            escalations: n,
            seeding,
            publishing,
            expected,
            received: received.first.len() as u64,
            repeated: received.repeated,
            unknown,
            unverified: received.unverified,
            receiving: match (first, last) {
                (Some(f), Some(l)) => window(f, l),
                _ => Duration::ZERO,
            },
            latency,
            outcomes,
            memory_kib,
        })
    }
}
