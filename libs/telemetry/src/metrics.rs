//! The metrics every process exposes at `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Where an event came in.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: &'static str,
}

/// Why an event was rejected.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub source: &'static str,
    pub reason: &'static str,
}

/// A durable consumer.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: String,
}

/// A durable consumer and what became of a message.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerOutcomeLabels {
    pub consumer: String,
    pub outcome: &'static str,
}

/// An HTTP route and its status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    pub status: u16,
}

/// A breaker transition: the vendor and the states.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreakerTransitionLabels {
    pub vendor: String,
    pub from: &'static str,
    pub to: &'static str,
}

/// A JetStream KV bucket (its name without the namespace).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BucketLabels {
    pub bucket: &'static str,
}

/// A rate limit's scope (`tenant`, `vendor`) and its answer (`allow`, `deny`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    pub scope: &'static str,
    pub outcome: &'static str,
}

/// What became of one try of a callback delivery: `delivered`, `retried`
/// or `failed`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// A notification try's channel kind (`webhook`, `slack`, `pagerduty`)
/// and outcome (`delivered`, `retried`, `failed`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

/// The table rows were pruned from.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PrunedLabels {
    pub table: &'static str,
}

/// A hard retry limit, by its config key name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HardLimitLabels {
    pub limit: &'static str,
}

/// Latency buckets in seconds, from 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];
/// Batch size buckets.
const BATCH_BUCKETS: [f64; 10] = [
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 350.0, 500.0, 1000.0,
];

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn batch() -> Histogram {
    Histogram::new(BATCH_BUCKETS)
}

/// Every metric of a process, registered once in its composition root.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub events_accepted: Family<SourceLabels, Counter>,
    pub events_duplicate: Family<SourceLabels, Counter>,
    pub events_persisted: Family<SourceLabels, Counter>,
    pub events_rejected: Family<RejectLabels, Counter>,
    pub messages: Family<ConsumerOutcomeLabels, Counter>,
    pub messages_redelivered: Family<ConsumerLabels, Counter>,
    pub messages_dead_lettered: Family<ConsumerLabels, Counter>,
    pub batch_seconds: Family<ConsumerLabels, Histogram, fn() -> Histogram>,
    pub batch_size: Family<ConsumerLabels, Histogram, fn() -> Histogram>,
    pub http_seconds: Family<HttpLabels, Histogram, fn() -> Histogram>,
    /// From an event's publish (its JetStream timestamp) to its commit.
    pub ingest_lag_seconds: Family<SourceLabels, Histogram, fn() -> Histogram>,
    pub incidents_opened: Counter,
    pub incidents_resolved: Counter,
    pub outbox_published: Counter,
    pub publish_failures: Counter,
    /// Events per group of the gateway's group commit.
    pub ingest_group_events: Histogram,
    pub breaker_transitions: Family<BreakerTransitionLabels, Counter>,
    pub breaker_transition_record_failures: Counter,
    pub kv_cas_conflicts: Family<BucketLabels, Counter>,
    /// KV watches this process holds open, by bucket: one per bucket.
    pub kv_watches: Family<BucketLabels, Gauge>,
    /// Retry commands the scheduler fired (written to the outbox).
    pub retry_commands: Counter,
    /// How late the scheduler fired each retry (fired − due).
    pub scheduler_lateness_seconds: Histogram,
    pub rate_limit_decisions: Family<RateLimitLabels, Counter>,
    pub hard_limits_exceeded: Family<HardLimitLabels, Counter>,
    /// Tries of callback deliveries, by outcome.
    pub callback_deliveries: Family<OutcomeLabels, Counter>,
    /// How long each callback POST took, answered or not.
    pub callback_seconds: Histogram,
    /// Tries of notifications, by channel kind and outcome.
    pub notifications: Family<NotificationLabels, Counter>,
    /// How long each notification POST took, answered or not.
    pub notification_seconds: Histogram,
    /// Escalations sent on to the next level because every channel of
    /// theirs failed.
    pub notification_fallbacks: Counter,
    /// Notifications held back by `notify_after` and not sent: their
    /// incidents resolved first.
    pub notifications_suppressed: Counter,
    /// Rows deleted past their retention, by table.
    pub pruned_rows: Family<PrunedLabels, Counter>,
    /// Notification tries put off by their channel's rate limit.
    pub notifications_rate_limited: Counter,
    /// Incidents told in a notification of their group rather than their own.
    pub notifications_grouped: Counter,
    /// Actions by kind and status, as the database holds them (the
    /// coordinator counts them).
    pub actions: Family<ActionLabels, Gauge>,
    /// Retries held now, by vendor (the coordinator counts them).
    pub held_retries: Family<VendorLabels, Gauge>,
}

/// An action's kind and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub kind: String,
    pub status: String,
}

/// A vendor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VendorLabels {
    pub vendor: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// An open KV watch, counted in `awfdrs_kv_watches{bucket}` while it lives.
#[derive(Debug)]
#[must_use = "the watch is counted only while this lives"]
pub struct KvWatchOpen(Gauge);

impl Drop for KvWatchOpen {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Counts a watch of `bucket` as open until the returned value drops.
    pub fn kv_watch_open(&self, bucket: &'static str) -> KvWatchOpen {
        let gauge = self
            .kv_watches
            .get_or_create(&BucketLabels { bucket })
            .clone();
        gauge.inc();
        KvWatchOpen(gauge)
    }

    /// Registers every metric under the `awfdrs_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("awfdrs");
        let m = Self {
            events_accepted: Family::default(),
            events_duplicate: Family::default(),
            events_persisted: Family::default(),
            events_rejected: Family::default(),
            messages: Family::default(),
            messages_redelivered: Family::default(),
            messages_dead_lettered: Family::default(),
            batch_seconds: Family::new_with_constructor(latency),
            batch_size: Family::new_with_constructor(batch),
            http_seconds: Family::new_with_constructor(latency),
            ingest_lag_seconds: Family::new_with_constructor(latency),
            incidents_opened: Counter::default(),
            incidents_resolved: Counter::default(),
            outbox_published: Counter::default(),
            publish_failures: Counter::default(),
            ingest_group_events: batch(),
            breaker_transitions: Family::default(),
            breaker_transition_record_failures: Counter::default(),
            kv_cas_conflicts: Family::default(),
            kv_watches: Family::default(),
            retry_commands: Counter::default(),
            scheduler_lateness_seconds: latency(),
            rate_limit_decisions: Family::default(),
            hard_limits_exceeded: Family::default(),
            actions: Family::default(),
            held_retries: Family::default(),
            callback_deliveries: Family::default(),
            callback_seconds: latency(),
            notifications: Family::default(),
            notification_seconds: latency(),
            notification_fallbacks: Counter::default(),
            notifications_suppressed: Counter::default(),
            notifications_rate_limited: Counter::default(),
            pruned_rows: Family::default(),
            notifications_grouped: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_accepted",
            "Events accepted for processing, by source",
            m.events_accepted.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events recognised as duplicates of an accepted event, by source",
            m.events_duplicate.clone(),
        );
        registry.register(
            "events_persisted",
            "Events written to the database by the detector, by source",
            m.events_persisted.clone(),
        );
        registry.register(
            "events_rejected",
            "Events rejected, by source and reason",
            m.events_rejected.clone(),
        );
        registry.register(
            "messages",
            "Messages handled by a durable consumer, by outcome (ack, retry, dead_letter)",
            m.messages.clone(),
        );
        registry.register(
            "messages_redelivered",
            "Messages received again after a failed or unacknowledged delivery",
            m.messages_redelivered.clone(),
        );
        registry.register(
            "messages_dead_lettered",
            "Messages sent to the dead-letter subject and terminated",
            m.messages_dead_lettered.clone(),
        );
        registry.register(
            "batch_seconds",
            "Time to handle and commit one batch",
            m.batch_seconds.clone(),
        );
        registry.register(
            "batch_size",
            "Messages per handled batch",
            m.batch_size.clone(),
        );
        registry.register(
            "http_request_seconds",
            "HTTP request latency by route and status",
            m.http_seconds.clone(),
        );
        registry.register(
            "ingest_lag_seconds",
            "Time from an event's publish to its commit in the database",
            m.ingest_lag_seconds.clone(),
        );
        registry.register(
            "incidents_opened",
            "Incidents opened or re-opened",
            m.incidents_opened.clone(),
        );
        registry.register(
            "incidents_resolved",
            "Incidents resolved automatically",
            m.incidents_resolved.clone(),
        );
        registry.register(
            "outbox_published",
            "Outbox messages published",
            m.outbox_published.clone(),
        );
        registry.register(
            "publish_failures",
            "Publishes that failed or timed out",
            m.publish_failures.clone(),
        );
        registry.register(
            "ingest_group_events",
            "Single-event requests settled together by the gateway's group commit",
            m.ingest_group_events.clone(),
        );
        registry.register(
            "breaker_transitions",
            "Circuit breaker state changes written by this process, by vendor and states",
            m.breaker_transitions.clone(),
        );
        registry.register(
            "breaker_transition_record_failures",
            "Breaker transitions written to KV but not recorded in PostgreSQL",
            m.breaker_transition_record_failures.clone(),
        );
        registry.register(
            "kv_cas_conflicts",
            "KV compare-and-set writes lost to a concurrent writer and recomputed, by bucket",
            m.kv_cas_conflicts.clone(),
        );
        registry.register(
            "retry_commands",
            "Retry commands the scheduler fired",
            m.retry_commands.clone(),
        );
        registry.register(
            "scheduler_lateness_seconds",
            "How late the scheduler fired each retry (fired minus due)",
            m.scheduler_lateness_seconds.clone(),
        );
        registry.register(
            "kv_watches",
            "KV watches this process holds open, by bucket",
            m.kv_watches.clone(),
        );
        registry.register(
            "rate_limit_decisions",
            "Retry rate limit checks, by scope and outcome",
            m.rate_limit_decisions.clone(),
        );
        registry.register(
            "hard_limits_exceeded",
            "Retries refused by a hard limit, by limit",
            m.hard_limits_exceeded.clone(),
        );
        registry.register(
            "actions",
            "Actions by kind and status, counted in the database",
            m.actions.clone(),
        );
        registry.register(
            "held_retries",
            "Retries held while their vendor's breaker is open, by vendor",
            m.held_retries.clone(),
        );
        registry.register(
            "callback_deliveries",
            "Tries of retry-command deliveries to workflow callbacks, by outcome (delivered, retried, failed)",
            m.callback_deliveries.clone(),
        );
        registry.register(
            "callback_seconds",
            "Time each POST to a workflow callback took",
            m.callback_seconds.clone(),
        );
        registry.register(
            "notifications",
            "Tries of notifications to tenants' channels, by channel kind and outcome (delivered, retried, failed)",
            m.notifications.clone(),
        );
        registry.register(
            "notification_seconds",
            "Time each POST to a notification channel took",
            m.notification_seconds.clone(),
        );
        registry.register(
            "notification_fallbacks",
            "Escalations sent on to the next level of channels because every channel of theirs failed",
            m.notification_fallbacks.clone(),
        );
        registry.register(
            "notifications_suppressed",
            "Notifications held back by notify_after and not sent: their incidents resolved first",
            m.notifications_suppressed.clone(),
        );
        registry.register(
            "pruned_rows",
            "Rows deleted past their retention, by table",
            m.pruned_rows.clone(),
        );
        registry.register(
            "notifications_rate_limited",
            "Notification tries put off by their channel's rate limit",
            m.notifications_rate_limited.clone(),
        );
        registry.register(
            "notifications_grouped",
            "Incidents told in the notification of their group (one root cause) rather than their own",
            m.notifications_grouped.clone(),
        );
        Self { registry, ..m }
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
