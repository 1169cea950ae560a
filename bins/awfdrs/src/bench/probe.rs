//! When was each event committed? `events.received_at` is its transaction's
//! start, not its commit, so a probe reads the tenant's commit frontier
//! every few milliseconds (a few steps down an index) and notes when each
//! transaction became visible. After the run, each event's commit time is
//! the first probe that saw its transaction (or a later one: one detector
//! commits its batches in order), which is at most one probe interval late.

use std::time::Duration;

use awfdrs_store::Store;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::load::histogram;

/// What the probe saw: when (wall clock) the frontier first reached each
/// transaction start, in time order and with the frontier never going back.
#[derive(Debug, Default)]
pub struct Sightings(Vec<(DateTime<Utc>, DateTime<Utc>)>);

impl Sightings {
    /// The first sighting of a transaction that started at `received_at`
    /// or later.
    fn commit_of(&self, received_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let i = self
            .0
            .partition_point(|&(_, frontier)| frontier < received_at);
        self.0.get(i).map(|&(seen, _)| seen)
    }
}

/// A running probe.
#[derive(Debug)]
pub struct Probe {
    stop: CancellationToken,
    frontier: watch::Receiver<Option<DateTime<Utc>>>,
    task: JoinHandle<Sightings>,
}

impl Probe {
    /// Starts probing `tenant`'s events every `every`.
    pub fn start(store: Store, tenant: Uuid, every: Duration) -> Self {
        let stop = CancellationToken::new();
        let (tx, frontier) = watch::channel(None);
        let task = tokio::spawn(sight(store, tenant, every, stop.clone(), tx));
        Self {
            stop,
            frontier,
            task,
        }
    }

    /// Stops probing once every event of `tenant` has been committed: waits
    /// briefly for the probe to see the last transaction, then looks once
    /// at all of the tenant's events and counts any transaction still
    /// unseen as committed now.
    pub async fn finish(mut self, store: &Store, tenant: Uuid) -> Sightings {
        let last = store.bench_last_transaction(tenant).await.ok().flatten();
        if let Some(last) = last {
            let seen = self.frontier.wait_for(|f| f.is_some_and(|f| f >= last));
            let _ = tokio::time::timeout(Duration::from_millis(200), seen).await;
        }
        self.stop.cancel();
        let mut seen = self.task.await.unwrap_or_default();
        if let Some(last) = last
            && seen.0.last().is_none_or(|&(_, frontier)| frontier < last)
        {
            seen.0.push((Utc::now(), last));
        }
        seen
    }
}

async fn sight(
    store: Store,
    tenant: Uuid,
    every: Duration,
    stop: CancellationToken,
    tx: watch::Sender<Option<DateTime<Utc>>>,
) -> Sightings {
    let mut seen = Sightings::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return seen,
            _ = tick.tick() => {}
        }
        let Ok(Some(frontier)) = store.bench_commit_frontier(tenant).await else {
            continue;
        };
        // The snapshot was taken before now: now is a safe upper bound.
        let at = Utc::now();
        if seen.0.last().is_none_or(|&(_, last)| frontier > last) {
            seen.0.push((at, frontier));
            tx.send_replace(Some(frontier));
        }
    }
}

/// Latencies of a mode's events, in microseconds.
#[derive(Debug)]
pub struct Latencies {
    /// From the event's (intended) send to the commit of its transaction.
    pub commit: Histogram<u64>,
    /// From the event's (intended) send to the start of its transaction:
    /// the part spent in the broker and waiting for a batch.
    pub tx_start: Histogram<u64>,
    /// The last commit.
    pub last_commit: Option<DateTime<Utc>>,
    /// Transactions (batches) seen, and their mean duration from start to
    /// the commit's sighting, in microseconds.
    pub transactions: u64,
    pub mean_tx_micros: f64,
    /// Events whose commit the probe never saw (should be none).
    pub unseen: u64,
}

/// Each event's latencies from its `(occurred_at, received_at)`.
pub fn latencies(times: &[(DateTime<Utc>, DateTime<Utc>)], seen: &Sightings) -> Latencies {
    let mut out = Latencies {
        commit: histogram(),
        tx_start: histogram(),
        last_commit: None,
        transactions: 0,
        mean_tx_micros: 0.0,
        unseen: 0,
    };
    let micros = |from: DateTime<Utc>, to: DateTime<Utc>| {
        u64::try_from((to - from).num_microseconds().unwrap_or(0)).unwrap_or(0)
    };
    // Every event of a transaction has its start as `received_at`.
    let starts: std::collections::BTreeSet<DateTime<Utc>> = times.iter().map(|t| t.1).collect();
    let mut tx_total = 0u64;
    for &start in &starts {
        if let Some(committed) = seen.commit_of(start) {
            out.transactions += 1;
            tx_total += micros(start, committed);
        }
    }
    if out.transactions > 0 {
        out.mean_tx_micros = tx_total as f64 / out.transactions as f64;
    }
    for &(sent, received) in times {
        let _ = out.tx_start.record(micros(sent, received).max(1));
        match seen.commit_of(received) {
            Some(committed) => {
                let _ = out.commit.record(micros(sent, committed).max(1));
                out.last_commit = out.last_commit.max(Some(committed));
            }
            None => out.unseen += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).expect("valid")
    }

    #[test]
    fn an_event_commits_when_its_transaction_or_a_later_one_is_first_seen() {
        // Transactions started at 10 and 20 were seen at 15 and 32; the one
        // that started at 12 was never the frontier, but 20's sighting
        // proves it committed.
        let seen = Sightings(vec![(t(15), t(10)), (t(32), t(20))]);
        let times = [(t(0), t(10)), (t(5), t(12)), (t(18), t(20)), (t(30), t(40))];
        let l = latencies(&times, &seen);
        assert_eq!(l.commit.len(), 3);
        assert_eq!(l.unseen, 1);
        assert_eq!(l.commit.max() / 1000, 27);
        assert_eq!(l.commit.min() / 1000, 14);
        assert_eq!(l.last_commit, Some(t(32)));
        // 10 → 15, 12 → 32, 20 → 32: 5 + 20 + 12 ms over three transactions.
        assert_eq!(l.transactions, 3);
        assert!((l.mean_tx_micros - 12_333.3).abs() < 1.0);
    }
}
