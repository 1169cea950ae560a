//! The configuration's shape ([`crate::validate`] checks it).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration of a process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub namespace: String,
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub http: HttpConfig,
    pub ingress: IngressConfig,
    pub detector: DetectorConfig,
    pub analyzer: AnalyzerConfig,
    pub coordinator: CoordinatorConfig,
    pub scheduler: SchedulerConfig,
    pub notifications: NotificationsConfig,
    pub outbox: OutboxConfig,
    pub retention: RetentionConfig,
    pub consumer: ConsumerConfig,
    pub telemetry: TelemetryConfig,
    pub shutdown: ShutdownConfig,
    pub rules: RulesConfig,
    pub secrets: crate::SecretsConfig,
}

/// PostgreSQL connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

/// NATS connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub url: String,
    pub connect_timeout_ms: u64,
    pub publish_timeout_ms: u64,
    pub replicas: usize,
}

/// The HTTP gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub addr: String,
    pub body_limit_bytes: usize,
    pub batch_body_limit_bytes: usize,
    pub max_batch_items: usize,
    /// Largest body of a signed (webhook) batch: read before the signature is checked.
    pub webhook_batch_body_limit_bytes: usize,
    /// Request bodies buffered at once, in bytes, over every request.
    pub max_buffered_body_bytes: usize,
    /// Signed-webhook bodies read at once (their reads come before authentication).
    pub max_unauthenticated_bodies: usize,
    /// From a request's first byte to its last header byte.
    pub header_read_timeout_ms: u64,
    /// Reading a whole request body.
    pub body_read_timeout_ms: u64,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout_ms: u64,
    /// Open connections at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Requests being handled at once; further ones wait for a slot.
    pub max_concurrent_requests: usize,
    /// Largest request line plus headers (431 above it).
    pub max_header_bytes: usize,
    /// Longest request target, path and query (414 above it).
    pub max_uri_bytes: usize,
    /// Group commit of single-event requests: at most this many events per
    /// group (one key reservation, one burst of publishes, one commit).
    pub group_max: usize,
    /// How long a group waits for more requests while others are on their
    /// way, in microseconds; 0 turns group commit off (each request is
    /// settled on its own).
    pub group_linger_us: u64,
    /// Single-event requests waiting for a group; one more is answered 503
    /// with `Retry-After`.
    pub group_queue: usize,
    /// Groups being settled at once (each holds a database connection).
    pub group_settlements: usize,
}

/// Per-process, per-tenant ingress limits (GCRA in memory).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressConfig {
    pub per_tenant_per_second: u32,
    pub burst: u32,
}

/// The detector worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    pub consumers: usize,
    pub pipeline: usize,
    pub batch_size: usize,
    pub linger_ms: u64,
    pub reopen_window_secs: u64,
    pub auto_resolve_successes: u32,
}

/// The analyzer worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzerConfig {
    /// The engine that decides: `local`, the deterministic engine that
    /// runs offline (the only one built in; no network call is made).
    pub engine: String,
    /// Messages per fetch, and how long to wait for a batch to fill.
    pub batch_size: usize,
    pub linger_ms: u64,
    /// Distinct incidents of a batch analysed at once, each in its own
    /// transaction.
    pub concurrency: usize,
    /// The window over which a vendor's failures across workflows and
    /// tenants count as one outage, ending at the incident's last failure.
    pub vendor_window_secs: u64,
    /// How far back a step's successes and releases are read.
    pub lookback_secs: u64,
    /// Past incidents read as candidates per kind (same signature, same
    /// vendor, similar message).
    pub similar_candidates: i64,
    /// How often the breakers are looked at for ones that opened while
    /// incidents of their vendor are open.
    pub breaker_check_ms: u64,
}

/// The coordinator worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// Decisions per fetch, and how long to wait for a batch to fill.
    pub batch_size: usize,
    pub linger_ms: u64,
    /// How often held retries are looked at for release (their vendor's
    /// breaker letting retries through again).
    pub hold_check_ms: u64,
    /// How often actions are counted for `/metrics` (`awfdrs_actions`,
    /// `awfdrs_held_retries`).
    pub gauges_ms: u64,
}

/// The retry scheduler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Due retries fired per transaction.
    pub batch_size: i64,
    /// The longest the scheduler sleeps without looking (it is woken early
    /// when a nearer retry is scheduled).
    pub max_sleep_ms: u64,
    /// How long one POST to a workflow's callback may take.
    pub callback_timeout_ms: u64,
    /// Tries of a callback delivery before it is recorded `FAILED`.
    pub callback_max_tries: u32,
}

/// Outbound deliveries to tenants' URLs (workflow callbacks) and the
/// notifier's channels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Whether a target may resolve to a loopback, private or link-local
    /// address (local runs and tests; never in production).
    pub allow_private_targets: bool,
    /// Escalations per fetch, and how long to wait for a batch to fill.
    pub batch_size: usize,
    pub linger_ms: u64,
    /// How long one POST to a channel may take.
    pub timeout_ms: u64,
    /// Tries of a notification before it is recorded `FAILED`.
    pub max_tries: u32,
    /// How long an escalated incident waits for an acknowledgement before
    /// the next level of channels is told, where the level's channels set
    /// none.
    pub escalate_after_ms: u64,
    /// Incidents that share a root cause (one vendor at fault, the same
    /// error code) are told in one notification per channel: the first
    /// waits `group_wait_ms` for others to join, and a notification not
    /// yet tried takes those that come within `group_window_ms` of it.
    /// `group_window_ms: 0` groups nothing.
    pub group_wait_ms: u64,
    pub group_window_ms: u64,
    /// Deliveries per minute a channel is sent at most, where the channel
    /// sets none, and how many may go back to back; shared by every
    /// notifier (JetStream KV).
    pub channel_rate_per_minute: u32,
    pub channel_burst: u32,
}

/// Pruning what grows with traffic (how long each is kept is in the
/// database: `awfdrs retention`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// How often the detector prunes what is past its retention.
    pub sweep_ms: u64,
    /// Rows deleted per statement.
    pub batch: i64,
    /// The events' day partitions made ahead: today and this many more.
    pub partitions_ahead_days: u32,
}

/// The outbox relay every worker with an outbox runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// How often rows left unpublished (a crash between commit and
    /// publish) are swept; rows older than two periods are published.
    pub sweep_ms: u64,
}

/// Settings shared by every durable consumer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    pub max_deliver: i64,
    pub ack_wait_secs: u64,
    pub max_ack_pending: i64,
    pub nak_base_ms: u64,
    pub nak_max_ms: u64,
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Logs and metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    pub metrics_addr: String,
}

/// Graceful shutdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    pub grace_secs: u64,
}

/// Where the rules live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    pub dir: String,
}

impl HttpConfig {
    /// The header read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// The body read timeout.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    /// The keep-alive idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// The listen address (validated at load).
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)))
    }
}

impl TelemetryConfig {
    /// The metrics listen address (validated at load).
    pub fn metrics_socket_addr(&self) -> SocketAddr {
        self.metrics_addr
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9464)))
    }
}

impl ShutdownConfig {
    /// The drain grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }
}
