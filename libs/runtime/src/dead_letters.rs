//! The consumer loops' dead letters, recorded in PostgreSQL.

use awfdrs_bus::{DeadLetter, DeadLetterSink};
use awfdrs_store::Store;

/// Records dead letters in PostgreSQL's `dead_letters` table.
#[derive(Debug, Clone)]
pub struct StoreDeadLetters {
    store: Store,
}

impl StoreDeadLetters {
    /// A sink over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl DeadLetterSink for StoreDeadLetters {
    async fn record(&self, letter: &DeadLetter) -> Result<i64, String> {
        let headers: serde_json::Map<String, serde_json::Value> = letter
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let stage = letter.stage.to_string();
        self.store
            .record_dead_letter(&awfdrs_store::NewDeadLetter {
                stage: &stage,
                subject: &letter.subject,
                stream_sequence: i64::try_from(letter.stream_sequence).unwrap_or(i64::MAX),
                delivered: letter.delivered,
                consumer: &letter.consumer,
                reason: &letter.reason,
                headers: serde_json::Value::Object(headers),
                payload: &letter.payload,
            })
            .await
            .map_err(|e| e.to_string())
    }
}
