//! The detector's batch handler: decode and validate, then one transaction
//! per batch, then ack.

use std::collections::HashMap;

use awfdrs_bus::{Delivery, Handler, Outcome, Turn};
use awfdrs_domain::{Signature, ValidEvent, event_id, normalize_code, parse_body};
use awfdrs_guard::BreakerFeed;
use awfdrs_runtime::{Context, Relay, outcome_of, retry_transient};
use awfdrs_store::{DetectBatch, DetectOutcome, DetectSettings, NewEvent, StoreError};
use awfdrs_telemetry::{RejectLabels, SourceLabels};
use chrono::Utc;
use tracing::{info, warn};
use uuid::Uuid;

use crate::announce;

/// How long a tenant's id stays cached. Tenants are never renamed or
/// deleted, so this only bounds the memory of slugs seen.
const TENANT_CACHE_CAPACITY: usize = 10_000;

/// How long a batch that stored its events waits, holding their rows, for
/// the batch before it to commit; past it, it lets go and waits without.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Persists batches of events and opens incidents.
#[derive(Debug)]
pub struct DetectorHandler {
    ctx: Context,
    feed: BreakerFeed,
    relay: Relay,
    tenants: quick_cache::sync::Cache<String, Uuid>,
}

/// The fate of one delivery before the transaction.
enum Prepared {
    Event(Box<NewEvent>),
    Rejected(String, &'static str),
    Retry(String),
    Unavailable(String),
}

impl DetectorHandler {
    /// A handler over `ctx`'s store and bus, feeding the breakers through
    /// `feed` and publishing what it commits through `relay`.
    pub fn new(ctx: Context, feed: BreakerFeed, relay: Relay) -> Self {
        Self {
            ctx,
            feed,
            relay,
            tenants: quick_cache::sync::Cache::new(TENANT_CACHE_CAPACITY),
        }
    }

    async fn tenant_id(&self, slug: &str) -> Result<Option<Uuid>, StoreError> {
        if let Some(id) = self.tenants.get(slug) {
            return Ok(Some(id));
        }
        let found = self.ctx.store.tenant_by_slug(slug).await?;
        if let Some(t) = &found {
            self.tenants.insert(slug.to_owned(), t.id);
        }
        Ok(found.map(|t| t.id))
    }

    async fn prepare(&self, d: &Delivery) -> Prepared {
        let ns = self.ctx.bus.ns();
        let Some((tenant, workflow)) = ns.parse_events_subject(&d.subject) else {
            return Prepared::Rejected(
                format!(
                    "subject {} is not <ns>.events.<tenant>.<workflow>",
                    d.subject
                ),
                "bad_subject",
            );
        };
        let ValidEvent { event, body_hash } = match parse_body(&d.payload, Utc::now()) {
            Ok(p) => p.valid,
            Err(e) => return Prepared::Rejected(e.to_string(), e.code()),
        };
        if event.workflow_id != workflow {
            return Prepared::Rejected(
                format!(
                    "workflow_id {:?} does not match the subject's workflow {workflow:?}",
                    event.workflow_id
                ),
                "subject_mismatch",
            );
        }
        let tenant_id = match self.tenant_id(tenant).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                return Prepared::Rejected(format!("unknown tenant {tenant:?}"), "unknown_tenant");
            }
            Err(e) if e.is_unavailable() => {
                return Prepared::Unavailable(format!("tenant lookup failed: {e}"));
            }
            Err(e) => return Prepared::Retry(format!("tenant lookup failed: {e}")),
        };
        let id = event_id(tenant, &event.idempotency_key);
        let correlation_id = event
            .correlation_id
            .clone()
            .or_else(|| d.correlation_id().map(str::to_owned))
            .unwrap_or_else(|| id.to_string());
        let reservation = d
            .header(awfdrs_bus::headers::RESERVATION)
            .and_then(|r| Uuid::parse_str(r).ok());
        let failure = event.event_type.is_failure();
        let error = event.error.as_ref();
        let signature = failure
            .then(|| error.map(|e| Signature::compute(tenant, workflow, &e.code)))
            .flatten();
        let open_after = error.filter(|_| failure).and_then(|e| {
            let rules = self.ctx.rules.current();
            rules
                .error_code(&e.code)
                .open_after
                .map(|o| (i64::from(o.count), o.within.as_secs_f64()))
        });
        Prepared::Event(Box::new(NewEvent {
            id,
            tenant_id,
            idempotency_key: event.idempotency_key,
            workflow_id: event.workflow_id,
            event_type: event.event_type.as_str(),
            is_failure: failure,
            is_success: event.event_type.is_success(),
            occurred_at: event.occurred_at,
            workflow_run_id: event.workflow_run_id,
            step: event.step,
            vendor: event.vendor,
            error_code: error.map(|e| normalize_code(&e.code)),
            error_code_raw: error.map(|e| e.code.clone()),
            error_message: error.and_then(|e| e.message.clone()),
            http_status: error.and_then(|e| e.http_status),
            retryable: error.and_then(|e| e.retryable),
            attempt: event.attempt,
            correlation_id,
            signature: signature.map(|s| s.as_str().to_owned()),
            body_hash: body_hash.0.to_vec(),
            // Only a message carrying a gateway reservation came through the
            // gateway; anyone may publish the source header itself.
            source: if reservation.is_some() {
                "http"
            } else {
                "nats"
            },
            reservation,
            metadata: event
                .metadata
                .map(|m| serde_json::Value::Object(m).to_string()),
            open_after,
        }))
    }

    /// One transaction: persist the batch, apply the incident rules in
    /// `turn`, and announce the incidents it opened through the outbox;
    /// then the turn is passed on and the relay publishes what the commit
    /// wrote. Transient failures are retried, in the same turn.
    async fn commit(
        &self,
        batch: &DetectBatch,
        slugs: &HashMap<Uuid, String>,
        turn: &Turn,
    ) -> Result<DetectOutcome, StoreError> {
        let c = &self.ctx.config.detector;
        let settings = DetectSettings {
            reopen_window_secs: c.reopen_window_secs,
            auto_resolve_successes: c.auto_resolve_successes,
        };
        let once = || async {
            loop {
                let mut work = self.ctx.store.begin_work().await?;
                let in_time = async { tokio::time::timeout(TURN_WAIT, turn.wait()).await.is_ok() };
                let Some(done) = work.detect_in_turn(batch, settings, in_time).await? else {
                    // The batch before holds its turn longer than it should
                    // take, perhaps waiting for a key this transaction holds:
                    // let go of everything and start again in turn.
                    warn!(
                        waited_ms = TURN_WAIT.as_millis(),
                        "the batch before is slow to commit; waiting for it without holding rows"
                    );
                    work.rollback().await?;
                    turn.wait().await;
                    continue;
                };
                let ns = self.ctx.bus.ns();
                work.outbox(
                    done.opened
                        .iter()
                        .chain(&done.retries_failed)
                        .map(|o| announce::opened(ns, slugs, o))
                        .collect(),
                )
                .await?;
                return Ok::<_, StoreError>((done, work.commit().await?));
            }
        };
        let (done, committed) = retry_transient("batch transaction", once).await?;
        self.relay.publish(committed).await;
        Ok(done)
    }
}

impl Handler for DetectorHandler {
    async fn ready(&self) -> bool {
        self.ctx.store.ping().await.is_ok()
    }

    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        self.handle_in_turn(batch, Turn::first()).await
    }

    /// Decodes and stores the batch's events beside the batches before it,
    /// then applies the incident rules and commits in its turn.
    async fn handle_in_turn(&self, batch: &[Delivery], turn: Turn) -> Vec<Outcome> {
        let metrics = &self.ctx.metrics;
        let mut outcomes = vec![Outcome::Ack; batch.len()];
        let mut events = DetectBatch::default();
        let mut positions = Vec::with_capacity(batch.len());
        let mut slugs = HashMap::new();
        for (i, d) in batch.iter().enumerate() {
            match self.prepare(d).await {
                Prepared::Event(e) => {
                    if let Some((tenant, _)) = self.ctx.bus.ns().parse_events_subject(&d.subject) {
                        slugs.insert(e.tenant_id, tenant.to_owned());
                    }
                    events.events.push(*e);
                    positions.push(i);
                }
                Prepared::Rejected(reason, label) => {
                    metrics
                        .events_rejected
                        .get_or_create(&RejectLabels {
                            source: "nats",
                            reason: label,
                        })
                        .inc();
                    outcomes[i] = Outcome::Reject(reason);
                }
                Prepared::Retry(reason) => outcomes[i] = Outcome::Retry(reason),
                Prepared::Unavailable(reason) => outcomes[i] = Outcome::Unavailable(reason),
            }
        }
        if events.events.is_empty() {
            return outcomes;
        }
        let result = match self.commit(&events, &slugs, &turn).await {
            Err(e) if !e.is_transient() && events.events.len() > 1 => {
                // One event the database refuses must not hold back the
                // rest: commit them one by one to isolate it.
                warn!(error = %e, "batch refused; isolating the offending events");
                self.commit_one_by_one(events, &positions, &slugs, &turn, &mut outcomes)
                    .await;
                return outcomes;
            }
            r => r,
        };
        // Committed or given up: the next batch may update incidents.
        turn.pass();
        match result {
            Ok(done) => {
                self.settle(&events, &positions, batch, done, &slugs, &mut outcomes)
                    .await
            }
            Err(e) => {
                let transient = e.is_transient();
                warn!(error = %e, transient, "batch transaction failed");
                for &p in &positions {
                    outcomes[p] = outcome_of(&e, "the event");
                }
            }
        }
        outcomes
    }
}

impl DetectorHandler {
    async fn commit_one_by_one(
        &self,
        events: DetectBatch,
        positions: &[usize],
        slugs: &HashMap<Uuid, String>,
        turn: &Turn,
        outcomes: &mut [Outcome],
    ) {
        for (event, &p) in events.events.into_iter().zip(positions) {
            let single = DetectBatch {
                events: vec![event],
            };
            match self.commit(&single, slugs, turn).await {
                Ok(done) => {
                    let mut one = [Outcome::Ack];
                    self.settle_outcome(&single, &[0], done, slugs, &mut one)
                        .await;
                    outcomes[p] = one[0].clone();
                }
                Err(e) => outcomes[p] = outcome_of(&e, "the event"),
            }
        }
    }

    async fn settle(
        &self,
        events: &DetectBatch,
        positions: &[usize],
        batch: &[Delivery],
        done: DetectOutcome,
        slugs: &HashMap<Uuid, String>,
        outcomes: &mut [Outcome],
    ) {
        let now = Utc::now();
        for &i in &done.inserted {
            let d = &batch[positions[i]];
            let lag = (now - d.published).num_microseconds().unwrap_or(0) as f64 / 1e6;
            self.ctx
                .metrics
                .ingest_lag_seconds
                .get_or_create(&SourceLabels {
                    source: events.events[i].source,
                })
                .observe(lag.max(0.0));
        }
        self.settle_outcome(events, positions, done, slugs, outcomes)
            .await;
    }

    async fn settle_outcome(
        &self,
        events: &DetectBatch,
        positions: &[usize],
        done: DetectOutcome,
        slugs: &HashMap<Uuid, String>,
        outcomes: &mut [Outcome],
    ) {
        let metrics = &self.ctx.metrics;
        for &i in &done.inserted {
            let source = SourceLabels {
                source: events.events[i].source,
            };
            metrics.events_persisted.get_or_create(&source).inc();
            // The gateway counted what it accepted; NATS events are
            // accepted here.
            if source.source == "nats" {
                metrics.events_accepted.get_or_create(&source).inc();
            }
        }
        // Vendor outcomes feed the shared breakers; the rules say which
        // failures are the vendor's fault. Tenants are the sources.
        let rules = self.ctx.rules.current();
        for &i in &done.inserted {
            let e = &events.events[i];
            let Some(vendor) = &e.vendor else { continue };
            let source = slugs.get(&e.tenant_id).map_or("", String::as_str);
            if e.is_success {
                self.feed.observe_success(vendor, source);
            } else if let (true, Some(code)) = (e.is_failure, &e.error_code) {
                self.feed
                    .observe_failure(vendor, rules.error_code(code), source);
            }
        }
        for &i in &done.duplicates {
            metrics
                .events_duplicate
                .get_or_create(&SourceLabels {
                    source: events.events[i].source,
                })
                .inc();
        }
        for &i in &done.conflicts {
            let e = &events.events[i];
            metrics
                .events_rejected
                .get_or_create(&RejectLabels {
                    source: e.source,
                    reason: "key_reused",
                })
                .inc();
            outcomes[positions[i]] = Outcome::Reject(format!(
                "idempotency key {:?} was already used with a different body",
                e.idempotency_key
            ));
        }
        for &i in &done.abandoned {
            // The gateway answered 503 for this publish and the caller may
            // have sent the event again: acked, not stored.
            let e = &events.events[i];
            metrics
                .events_rejected
                .get_or_create(&RejectLabels {
                    source: e.source,
                    reason: "abandoned_reservation",
                })
                .inc();
        }
        for o in &done.opened {
            info!(
                incident = %o.id, tenant = %o.tenant_id, workflow = %o.workflow_id,
                error_code = %o.error_code, reopened = o.reopened,
                correlation_id = %o.correlation_id, "incident opened"
            );
        }
        metrics.incidents_opened.inc_by(done.opened.len() as u64);
        metrics
            .incidents_resolved
            .inc_by(done.resolved.len() as u64);
    }
}
