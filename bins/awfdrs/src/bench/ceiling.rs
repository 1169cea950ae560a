//! The raw ceiling's consumer: the bus's consumer loop with the detector's
//! batch size and linger, and a handler that does the least a durable
//! pipeline must: one batched insert of the payloads into a bare table per
//! batch, then ack.

use awfdrs_bus::{Delivery, Handler, Outcome};
use awfdrs_store::{BareRow, Store};
use tokio::sync::watch;

/// Inserts each batch into the bare table and counts what it committed.
#[derive(Debug)]
pub struct BareHandler {
    pub store: Store,
    pub committed: watch::Sender<u64>,
}

impl Handler for BareHandler {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let rows: Vec<BareRow<'_>> = batch
            .iter()
            .map(|d| BareRow {
                stream_seq: d.stream_sequence,
                subject: &d.subject,
                payload: &d.payload,
            })
            .collect();
        match self.store.bench_insert_bare(&rows).await {
            Ok(()) => {
                self.committed.send_modify(|n| *n += batch.len() as u64);
                vec![Outcome::Ack; batch.len()]
            }
            Err(e) => vec![Outcome::Retry(format!("bare insert failed: {e}")); batch.len()],
        }
    }
}
