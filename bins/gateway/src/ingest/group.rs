//! Group commit of single-event requests.
//!
//! Each `POST /api/v1/events` hands its validated event to a bounded queue
//! and waits for its own fate. One collector forms groups: it takes what is
//! waiting, up to `http.group_max`, and lingers up to `http.group_linger_us`
//! while more requests are on their way (being read, authenticated or
//! validated, not yet queued), never when none is, so a lone client waits
//! for nothing. Each group is
//! settled like a batch request ([`settle`](super::settle)): one key
//! reservation, one burst of publishes whose acks are awaited together, one
//! commit, and then every request is answered from its own event's fate. At
//! most `http.group_settlements` groups are settled at once; while they are,
//! requests gather in the queue for the next group.
//!
//! A group is settled in a task of its own, so a client that goes away
//! cuts nothing; a request whose client has gone before its group forms is
//! left out of it. A full queue answers 503 with `Retry-After`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use awfdrs_runtime::{Context, Harness};
use awfdrs_store::Tenant;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{Instrument, info_span};

use super::Ready;
use super::answer::Fate;
use super::settle::spawn_settle;
use crate::Problem;

/// A single-event request waiting for its group.
struct Pending {
    tenant: Tenant,
    ready: Ready,
    answer: oneshot::Sender<Result<Fate, Problem>>,
}

/// How groups are formed and settled (`http.group_*`).
#[derive(Debug, Clone, Copy)]
struct Shape {
    max: usize,
    linger: Duration,
    settlements: usize,
}

/// The sending side of group commit, shared by the handlers.
#[derive(Debug)]
pub(crate) struct Coalescer {
    queue: mpsc::Sender<Pending>,
    /// Single-event requests being handled that are not queued yet: while
    /// there are some, a group waits for them (up to the linger).
    coming: Arc<AtomicUsize>,
}

/// A request on its way to the queue, counted in [`Coalescer::coming`]
/// until it is queued or gives up.
pub(super) struct Coming(Arc<AtomicUsize>);

impl Drop for Coming {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Coalescer {
    /// Group commit as `http.group_*` configure it, with its collector
    /// started in `harness`; `None` when it is off (`group_linger_us: 0`).
    pub(crate) fn start(harness: &Harness) -> Option<Self> {
        let http = &harness.ctx().config.http;
        if http.group_linger_us == 0 {
            return None;
        }
        let shape = Shape {
            max: http.group_max.max(1),
            linger: Duration::from_micros(http.group_linger_us),
            settlements: http.group_settlements.max(1),
        };
        let (queue, rx) = mpsc::channel(http.group_queue.max(1));
        let coming = Arc::new(AtomicUsize::new(0));
        let ctx = harness.ctx().clone();
        let seen = coming.clone();
        // It ends when the queue closes, which is when the HTTP server has
        // answered its last request and dropped the handlers' state.
        harness.spawn("gateway.group", move |_stop| async move {
            collect(ctx, rx, seen, shape).await;
            Ok(())
        });
        Some(Self { queue, coming })
    }

    /// Counts a request on its way; drop the guard once it is queued or
    /// answered otherwise.
    pub(super) fn coming(&self) -> Coming {
        self.coming.fetch_add(1, Ordering::AcqRel);
        Coming(self.coming.clone())
    }

    /// Queues one event and waits for its fate, which is known only once
    /// its group is settled.
    pub(super) async fn submit(
        &self,
        tenant: &Tenant,
        ready: Ready,
        coming: Coming,
    ) -> Result<Fate, Problem> {
        let (answer, fate) = oneshot::channel();
        let pending = Pending {
            tenant: tenant.clone(),
            ready,
            answer,
        };
        let queued = self.queue.try_send(pending);
        drop(coming);
        queued.map_err(|_| {
            Problem::unavailable("the gateway is taking as many events as it can; retry shortly")
        })?;
        fate.await
            .unwrap_or_else(|_| Err(Problem::internal("the event could not be processed")))
    }
}

/// Forms groups from `rx` and settles each in its own task, at most
/// `shape.settlements` at once, until the queue closes and every group is
/// settled.
async fn collect(
    ctx: Context,
    mut rx: mpsc::Receiver<Pending>,
    coming: Arc<AtomicUsize>,
    shape: Shape,
) {
    let slots = Arc::new(Semaphore::new(shape.settlements));
    loop {
        // Wait for a free slot first: meanwhile requests gather into the
        // next group.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let Some(group) = next_group(&mut rx, &coming, shape).await else {
            break;
        };
        let ctx = ctx.clone();
        let span = info_span!("ingest.group", events = group.len());
        // Boxed, so the task is spawned without moving the whole state of
        // the settlement (several KiB) from frame to frame.
        tokio::spawn(
            Box::pin(async move {
                answer(ctx, group).await;
                drop(slot);
            })
            .instrument(span),
        );
    }
    // Every slot back: every group settled and answered.
    let all = u32::try_from(shape.settlements).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// The next group: the first request to come, what is waiting behind it,
/// and what arrives within the linger while requests are on their way.
/// Requests whose client has gone are left out. `None` once the queue is
/// closed and empty.
async fn next_group(
    rx: &mut mpsc::Receiver<Pending>,
    coming: &AtomicUsize,
    shape: Shape,
) -> Option<Vec<Pending>> {
    let mut group = Vec::with_capacity(shape.max.min(64));
    let mut deadline = None;
    while group.len() < shape.max {
        let next = match rx.try_recv() {
            Ok(p) => Some(p),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) if group.is_empty() => rx.recv().await,
            Err(mpsc::error::TryRecvError::Empty) => {
                if coming.load(Ordering::Acquire) == 0 {
                    break;
                }
                let until = *deadline.get_or_insert_with(|| Instant::now() + shape.linger);
                tokio::time::timeout_at(until, rx.recv())
                    .await
                    .ok()
                    .flatten()
            }
        };
        match next {
            Some(p) if p.answer.is_closed() => {}
            Some(p) => group.push(p),
            // With nothing gathered, no request means the queue is closed.
            None if group.is_empty() => return None,
            None => break,
        }
    }
    Some(group)
}

/// Settles `group` and answers each request from its own event's fate (or
/// every one with the problem that stopped the whole group).
async fn answer(ctx: Context, group: Vec<Pending>) {
    if group.is_empty() {
        return;
    }
    ctx.metrics.ingest_group_events.observe(group.len() as f64);
    let (answers, items): (Vec<_>, Vec<_>) = group
        .into_iter()
        .map(|p| (p.answer, (p.tenant, p.ready)))
        .unzip();
    match spawn_settle(ctx, items).await {
        Ok(fates) => {
            for (answer, fate) in answers.into_iter().zip(fates) {
                // A client gone by now: its event's fate stands regardless.
                let _ = answer.send(Ok(fate));
            }
        }
        Err(problem) => {
            for answer in answers {
                let _ = answer.send(Err(problem.clone()));
            }
        }
    }
}
