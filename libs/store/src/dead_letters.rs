//! Dead letters: the durable record of every message a consumer gave up on
//! (reason, subject, stream sequence, delivery count, headers and the full
//! payload), written before the original is terminated, and what operators
//! list, show and replay.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// A dead letter to record.
#[derive(Debug, Clone)]
pub struct NewDeadLetter<'a> {
    pub stage: &'a str,
    pub subject: &'a str,
    pub stream_sequence: i64,
    pub delivered: i64,
    pub consumer: &'a str,
    pub reason: &'a str,
    /// Header names to values (strings), as the bus encodes them.
    pub headers: serde_json::Value,
    pub payload: &'a [u8],
}

/// A recorded dead letter, without its payload (listings).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct DeadLetterSummary {
    pub id: i64,
    pub stage: String,
    pub subject: String,
    pub stream_sequence: i64,
    pub delivered: i64,
    pub reason: String,
    pub payload_bytes: i32,
    pub created_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
    pub replay_count: i32,
}

/// A recorded dead letter in full.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct DeadLetterRecord {
    pub id: i64,
    pub stage: String,
    pub subject: String,
    pub stream_sequence: i64,
    pub delivered: i64,
    pub consumer: String,
    pub reason: String,
    pub headers: serde_json::Value,
    #[serde(skip)]
    pub payload: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
    pub replay_count: i32,
}

impl DeadLetterRecord {
    /// A header's stored (encoded) value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.as_object().and_then(|m| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str())
        })
    }
}

/// `s` as PostgreSQL text: a NUL, which text cannot hold, is written `\0`.
fn pg_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\\0"))
    } else {
        Cow::Borrowed(s)
    }
}

impl Store {
    /// Records a dead letter and returns its id. Idempotent: the same
    /// consumer and stream sequence update the same row.
    ///
    /// # Errors
    /// On database failure.
    pub async fn record_dead_letter(&self, d: &NewDeadLetter<'_>) -> Result<i64, StoreError> {
        // jsonb cannot hold a NUL either.
        let headers: serde_json::Map<String, serde_json::Value> = d
            .headers
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => pg_text(s).into_owned(),
                    other => pg_text(&other.to_string()).into_owned(),
                };
                (pg_text(k).into_owned(), serde_json::Value::String(v))
            })
            .collect();
        let headers = serde_json::Value::Object(headers);
        Ok(sqlx::query_scalar(
            "INSERT INTO dead_letters
                 (stage, subject, stream_sequence, delivered, consumer, reason, headers, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (consumer, stream_sequence) DO UPDATE SET
                 stage = EXCLUDED.stage, subject = EXCLUDED.subject,
                 delivered = EXCLUDED.delivered, reason = EXCLUDED.reason,
                 headers = EXCLUDED.headers, payload = EXCLUDED.payload
             RETURNING id",
        )
        .bind(pg_text(d.stage).as_ref())
        .bind(pg_text(d.subject).as_ref())
        .bind(d.stream_sequence)
        .bind(d.delivered)
        .bind(pg_text(d.consumer).as_ref())
        .bind(pg_text(d.reason).as_ref())
        .bind(headers)
        .bind(d.payload)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The most recent dead letters, newest first, of `stage` if given.
    ///
    /// # Errors
    /// On database failure.
    pub async fn dead_letters(
        &self,
        stage: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeadLetterSummary>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, stage, subject, stream_sequence, delivered, reason,
                    octet_length(payload) AS payload_bytes, created_at, replayed_at, replay_count
             FROM dead_letters
             WHERE ($1::text IS NULL OR stage = $1)
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(stage)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?)
    }

    /// One dead letter with its payload.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is none with this id.
    pub async fn dead_letter(&self, id: i64) -> Result<DeadLetterRecord, StoreError> {
        sqlx::query_as(
            "SELECT id, stage, subject, stream_sequence, delivered, consumer, reason, headers,
                    payload, created_at, replayed_at, replay_count
             FROM dead_letters WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)
    }

    /// Records the `replay`-th replay of dead letter `id` (1 for the first);
    /// returns false when another replay was recorded meanwhile.
    ///
    /// # Errors
    /// On database failure.
    pub async fn mark_dead_letter_replayed(
        &self,
        id: i64,
        replay: i32,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE dead_letters SET replayed_at = now(), replay_count = $2
             WHERE id = $1 AND replay_count = $2 - 1",
        )
        .bind(id)
        .bind(replay)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_written_as_an_escape() {
        assert_eq!(pg_text("a\0b"), "a\\0b");
        assert!(matches!(pg_text("plain"), Cow::Borrowed(_)));
    }
}
