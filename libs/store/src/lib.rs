//! The PostgreSQL system of record: tenants, events (append-only),
//! incidents and their transitions, the gateway's idempotency keys and the
//! outbox. This is the only crate that writes SQL; every query is scoped by
//! tenant. It knows nothing of NATS: a worker's effects and the messages
//! they cause are written in one [`Work`] transaction, and its commit hands
//! the outbox rows it wrote to the caller's relay.

mod actions;
mod analysis;
mod approvals;
mod arbiter;
#[cfg(feature = "bench")]
mod bench;
mod callbacks;
mod channels;
mod dead_letters;
mod decisions;
mod detect;
mod error;
mod groups;
mod holds;
mod incidents;
mod ingest;
mod levels;
mod modes;
mod notifications;
mod operate;
mod outbox;
mod partitions;
mod probes;
mod reseal;
mod retention;
mod safety;
mod schedule;
mod sealed;
mod states;
mod tally;
mod tenants;
mod work;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

pub use actions::{Action, NewAction, RETRIES_CHANNEL};
pub use analysis::{AnalysisFacts, FactWindows, PastIncidentRow, REOPEN_WINDOW_RULE};
pub use approvals::{WaitingFor, WaitingRetry};
#[cfg(feature = "bench")]
pub use bench::{
    BareRow, BenchActionTimes, BenchDatabase, BenchLoopIncident, BenchNotificationOutcome,
    BenchStorage, BenchStormProgress, BenchTally, PastIncidentSeed, PastKind, PreloadShape,
    SeedIncidents,
};
pub use callbacks::{Callback, CallbackTry, DueDelivery, TryOutcome};
pub use channels::{Channel, NewChannel};
pub use dead_letters::{DeadLetterRecord, DeadLetterSummary, NewDeadLetter};
pub use detect::{DetectBatch, DetectOutcome, DetectSettings, NewEvent, OpenedIncident};
pub use error::{DbFailure, StoreError};
pub use groups::{GroupMember, Queued};
pub use holds::HeldRetry;
pub use incidents::{Incident, IncidentDetail, IncidentFilter, Page, Transition};
pub use ingest::{Claimed, KeyClaim, Reservation};
pub use levels::{Acknowledgement, LevelDue};
pub use modes::TenantMode;
pub use notifications::{
    DueNotification, NewNotification, NotificationSummary, NotificationTry, ResolvedToNotify,
    notification_id,
};
pub use operate::ActionFilter;
pub use outbox::OutboxRow;
pub use partitions::DroppedPartition;
pub use reseal::{ColumnReport, ResealReport, Unreadable};
pub use retention::{Kept, Retention};
pub use safety::{
    AttemptReservation, BreakerTransitionRow, NewBreakerTransition, NewRetryAttempt,
    RetryAttemptCounts, RetryScope,
};
pub use schedule::DueRetry;
pub use sealed::{Keyring, SealError, Slot, key_id};
pub use tenants::Tenant;
pub use work::{Committed, NewOutbox, Work};

/// The embedded migrations (`migrations/` at the workspace root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A handle on the database: a connection pool, and the keys that seal
/// secrets at rest (when this process has them). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    keyring: Option<Arc<Keyring>>,
}

impl Store {
    /// Connects a pool of at most `max_connections`.
    ///
    /// # Errors
    /// When the URL is invalid or the server cannot be reached.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url
            .parse::<PgConnectOptions>()?
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            keyring: None,
        })
    }

    /// Wraps an existing pool (tests).
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            keyring: None,
        }
    }

    /// This store, sealing and opening secrets with `keyring`.
    #[must_use]
    pub fn with_keyring(self, keyring: Arc<Keyring>) -> Self {
        Self {
            keyring: Some(keyring),
            ..self
        }
    }

    /// The keys that seal secrets, when configured.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_deref()
    }

    /// The keys, or why there are none.
    fn keys(&self) -> Result<&Keyring, SealError> {
        self.keyring.as_deref().ok_or(SealError::NoKey)
    }

    /// `plain` sealed for `slot`.
    fn seal(&self, slot: &Slot, plain: &str) -> Result<String, StoreError> {
        Ok(self.keys()?.seal(slot, plain)?)
    }

    /// The secret `stored` in `slot`, opened.
    fn open(&self, slot: &Slot, stored: &str) -> Result<String, StoreError> {
        Ok(self.keys()?.open(slot, stored)?)
    }

    /// A secret read for a delivery, opened; `None` (and an error logged)
    /// when it cannot be, so that one unreadable row does not stop the
    /// others: its delivery is tried again and given up as usual.
    fn open_for_delivery(&self, slot: &Slot, stored: Option<String>) -> Option<String> {
        let stored = stored?;
        match self.open(slot, &stored) {
            Ok(plain) => Some(plain),
            Err(e) => {
                tracing::error!(error = %e, "signing secret cannot be opened");
                None
            }
        }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies pending migrations. Safe to run from several processes at
    /// once: sqlx takes an advisory lock.
    ///
    /// # Errors
    /// When a migration fails or the applied ones differ from the embedded.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Whether the database answers.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A round trip on a new connection, outside the pool: tells why the
    /// server cannot be reached when the pool only times out.
    ///
    /// # Errors
    /// Why the connection or the query failed.
    pub async fn probe(&self) -> Result<(), StoreError> {
        use sqlx::Connection as _;
        let options = (*self.pool.connect_options()).clone();
        let mut conn = sqlx::PgConnection::connect_with(&options).await?;
        sqlx::query("SELECT 1").execute(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }
}
