//! What `awfdrs bench` needs from PostgreSQL, and nothing else uses: a
//! throw-away database per run, the bare table of the raw ceiling,
//! reading back when a tenant's events were committed, and for the
//! analysis modes a history of past incidents and when decisions were made;
//! for the remediation modes, what the `remediation` module writes; for
//! the notifier mode, how its notifications ended; for the loop mode,
//! what became of every incident; for the storm mode, the breaker's
//! transitions and when retries fired; for growth, events written straight into
//! the tables and what they take on disk.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use uuid::Uuid;

use crate::{Store, StoreError};

mod notifier;
mod preload;
mod remediation;
mod storm;
mod whole;

pub use notifier::BenchNotificationOutcome;
pub use preload::{BenchStorage, PreloadShape};
pub use remediation::{BenchActionTimes, SeedIncidents};
pub use storm::BenchStormProgress;
pub use whole::BenchLoopIncident;

/// A database created for one benchmark run, on the server of the
/// configured `DATABASE_URL`; dropped at the end of the run.
#[derive(Debug, Clone)]
pub struct BenchDatabase {
    admin: PgConnectOptions,
    name: String,
    url: String,
}

impl BenchDatabase {
    /// Creates an empty database `awfdrs_bench_<random>` next to the one
    /// `server_url` names (not migrated).
    ///
    /// # Errors
    /// When the URL is invalid or the database cannot be created.
    pub async fn create(server_url: &str) -> Result<Self, StoreError> {
        let options: PgConnectOptions = server_url.parse()?;
        let admin = options.clone().database("postgres");
        // Made of hex digits only, so safe to splice into the statement.
        let name = format!(
            "awfdrs_bench_{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        let mut conn = admin.connect().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let url = options.database(&name).to_url_lossy().to_string();
        Ok(Self { admin, name, url })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database, closing whatever connections are still open.
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        let mut conn: PgConnection = self.admin.connect().await?;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(())
    }
}

/// One message of the raw ceiling: its stream sequence, subject and payload.
#[derive(Debug, Clone, Copy)]
pub struct BareRow<'a> {
    pub stream_seq: u64,
    pub subject: &'a str,
    pub payload: &'a [u8],
}

/// A tenant's events and incidents after a run.
#[derive(Debug, Clone, Copy)]
pub struct BenchTally {
    pub events: i64,
    pub failures: i64,
    pub incidents: i64,
    /// The sum of the incidents' `event_count`: equals `opened_failures`
    /// when every failure was counted exactly once.
    pub incident_events: i64,
    /// Failures of a signature that has an incident; the others were held
    /// back by an `open_after` rule their signature never reached.
    pub opened_failures: i64,
}

impl Store {
    /// The server's version (`server_version`).
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_server_version(&self) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar("SHOW server_version")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Refreshes the planner's statistics of every table.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_analyze(&self) -> Result<(), StoreError> {
        sqlx::query("ANALYZE").execute(&self.pool).await?;
        Ok(())
    }

    /// Vacuums every table and refreshes its statistics, as autovacuum
    /// would have by now on a database that grew over days.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_vacuum_analyze(&self) -> Result<(), StoreError> {
        sqlx::query("VACUUM (ANALYZE)").execute(&self.pool).await?;
        Ok(())
    }

    /// Creates the raw ceiling's table: no keys, no indexes, no triggers.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_create_bare_table(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bench_bare (
                 stream_seq bigint NOT NULL,
                 subject    text   NOT NULL,
                 payload    bytea  NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Inserts a batch into the bare table: one statement, one implicit
    /// transaction, one commit.
    ///
    /// # Errors
    /// On database failure; nothing is written then.
    pub async fn bench_insert_bare(&self, rows: &[BareRow<'_>]) -> Result<(), StoreError> {
        let seqs: Vec<i64> = rows
            .iter()
            .map(|r| i64::try_from(r.stream_seq).unwrap_or(i64::MAX))
            .collect();
        let subjects: Vec<&str> = rows.iter().map(|r| r.subject).collect();
        let payloads: Vec<&[u8]> = rows.iter().map(|r| r.payload).collect();
        sqlx::query(
            "INSERT INTO bench_bare (stream_seq, subject, payload)
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bytea[])",
        )
        .bind(seqs)
        .bind(subjects)
        .bind(payloads)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rows in the bare table.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_bare_rows(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM bench_bare")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Drops the bare table.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_drop_bare_table(&self) -> Result<(), StoreError> {
        sqlx::query("DROP TABLE IF EXISTS bench_bare")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The latest transaction start (`received_at`) of the tenant's events
    /// of the last ten minutes: a few steps back along the primary key
    /// (received_at first) of the newest partitions, cheap enough to ask
    /// every few milliseconds while the tenant is the one writing. One
    /// detector commits its batches one after another, so seeing a
    /// transaction means it and every one that started earlier committed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_commit_frontier(
        &self,
        tenant: Uuid,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT max(received_at) FROM events
             WHERE tenant_id = $1 AND received_at > now() - interval '10 minutes'",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The latest transaction start (`received_at`) of all the tenant's
    /// events: a scan of them, for once at the end.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_last_transaction(
        &self,
        tenant: Uuid,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT max(received_at) FROM events WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// `(occurred_at, received_at)` of every event of the tenant.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_event_times(
        &self,
        tenant: Uuid,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT occurred_at, received_at FROM events WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// What the tenant's events became.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_tally(&self, tenant: Uuid) -> Result<BenchTally, StoreError> {
        let (events, failures, incidents, incident_events, opened_failures): (
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM events WHERE tenant_id = $1),
                    (SELECT count(*) FROM events WHERE tenant_id = $1
                         AND signature IS NOT NULL),
                    (SELECT count(*) FROM incidents WHERE tenant_id = $1),
                    (SELECT COALESCE(sum(event_count), 0)::bigint FROM incidents
                         WHERE tenant_id = $1),
                    (SELECT count(*) FROM events e WHERE e.tenant_id = $1
                         AND e.signature IN (SELECT signature FROM incidents
                                             WHERE tenant_id = $1))",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?;
        Ok(BenchTally {
            events,
            failures,
            incidents,
            incident_events,
            opened_failures,
        })
    }
}

/// The shape of the past incidents `bench_seed_past_incidents` writes: the
/// kinds of failure they spread over and the messages they reuse.
#[derive(Debug, Clone, Copy)]
pub struct PastIncidentSeed<'a> {
    /// The kinds of failure.
    pub kinds: &'a [PastKind],
    /// Every message's vector, one after another, `dims` components each.
    pub vectors: &'a [f32],
    pub dims: usize,
    /// Every message's LSH keys, one after another, `bands` keys each.
    pub keys: &'a [i32],
    pub bands: usize,
    /// Who resolved them (`auto-resolve` or an operator), spread over.
    pub resolvers: &'a [String],
}

/// One kind of past failure: a workflow calling a vendor, failing with a
/// code, and its signature.
#[derive(Debug, Clone)]
pub struct PastKind {
    pub workflow: String,
    pub vendor: String,
    pub code: String,
    pub signature: String,
}

impl Store {
    /// Writes `n` resolved incidents of `tenant` in one statement: spread
    /// over the seed's kinds, messages and resolvers, first seen one every
    /// 77 seconds back from now (100,000 span about 89 days), each resolved
    /// within two hours of its last failure.
    ///
    /// # Errors
    /// On database failure; nothing is written then.
    pub async fn bench_seed_past_incidents(
        &self,
        tenant: Uuid,
        n: u64,
        seed: PastIncidentSeed<'_>,
    ) -> Result<u64, StoreError> {
        let column =
            |field: fn(&PastKind) -> &str| -> Vec<&str> { seed.kinds.iter().map(field).collect() };
        let messages = seed.vectors.len() / seed.dims.max(1);
        let to_i32 = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        let done = sqlx::query(
            "INSERT INTO incidents (id, tenant_id, signature, workflow_id, error_code,
                 error_code_raw, vendor, step, status, event_count, first_seen, last_seen,
                 created_at, updated_at, resolved_at, resolved_by, message_vector, message_lsh)
             SELECT gen_random_uuid(), $1, ($5::text[])[k], ($2::text[])[k], ($4::text[])[k],
                    ($4::text[])[k], ($3::text[])[k], 'charge', 'RESOLVED', 1 + g % 40,
                    first_seen, last_seen, first_seen, resolved_at, resolved_at,
                    ($6::text[])[1 + (g * 7) % cardinality($6::text[])],
                    ($7::real[])[m * $8 + 1 : (m + 1) * $8],
                    ($9::integer[])[m * $10 + 1 : (m + 1) * $10]
             FROM generate_series(0, $11 - 1) g,
                  LATERAL (SELECT 1 + (g * 31) % cardinality($2::text[]) AS k,
                                  (g * 17 + g / 7) % $12 AS m,
                                  now() - (g + 1) * interval '77 seconds' AS first_seen) a,
                  LATERAL (SELECT first_seen + (g % 600) * interval '1 second' AS last_seen) b,
                  LATERAL (SELECT last_seen + (60 + (g * 37) % 7200) * interval '1 second'
                                  AS resolved_at) c",
        )
        .bind(tenant)
        .bind(column(|k| &k.workflow))
        .bind(column(|k| &k.vendor))
        .bind(column(|k| &k.code))
        .bind(column(|k| &k.signature))
        .bind(seed.resolvers)
        .bind(seed.vectors)
        .bind(to_i32(seed.dims))
        .bind(seed.keys)
        .bind(to_i32(seed.bands))
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .bind(to_i32(messages.max(1)))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Incidents in the database, of every tenant.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_incidents_total(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM incidents")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The tenant's incidents, and how many of them have a decision made
    /// when they opened.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_decided(&self, tenant: Uuid) -> Result<(i64, i64), StoreError> {
        Ok(sqlx::query_as(
            "SELECT (SELECT count(*) FROM incidents WHERE tenant_id = $1),
                    (SELECT count(*) FROM decisions WHERE tenant_id = $1 AND trigger = 'opened')",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?)
    }

    /// `(incidents.created_at, decisions.recorded_at)` of every decision of
    /// the tenant made when its incident opened: from the transaction that
    /// opened the incident to the one that recorded its decision.
    ///
    /// # Errors
    /// On database failure.
    pub async fn bench_decision_times(
        &self,
        tenant: Uuid,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT i.created_at, d.recorded_at
             FROM decisions d JOIN incidents i ON i.id = d.incident_id
             WHERE d.tenant_id = $1 AND d.trigger = 'opened'",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }
}
