//! Reading the dead letters of a namespace: from the `dead_letters` table
//! when the database has it, else from the dead-letter stream.

use awfdrs_bus::{Namespace, Topic};
use awfdrs_runtime::Context;

/// A dead letter, from the `dead_letters` table when it exists, else from
/// the dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Sequence of the original in the events stream.
    pub sequence: Option<u64>,
    pub reason: String,
    pub payload: Option<Vec<u8>>,
}

/// Whether the database has the durable dead-letter table.
pub async fn has_dead_letter_table(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT to_regclass('dead_letters') IS NOT NULL")
        .fetch_one(pool)
        .await
        .unwrap_or(false)
}

/// Every dead letter of namespace `ns`: the table's rows when the table
/// exists, else the messages of the dead-letter stream.
pub async fn dead_letters(
    pool: &sqlx::PgPool,
    js: &async_nats::jetstream::Context,
    ns: &str,
) -> Vec<DeadLetter> {
    if has_dead_letter_table(pool).await {
        type Row = (Option<i64>, Option<String>, Option<Vec<u8>>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT stream_sequence::bigint, reason::text, payload FROM dead_letters",
        )
        .fetch_all(pool)
        .await
        .expect("read dead_letters");
        return rows
            .into_iter()
            .map(|(s, r, p)| DeadLetter {
                sequence: s.and_then(|s| u64::try_from(s).ok()),
                reason: r.unwrap_or_default(),
                payload: p,
            })
            .collect();
    }
    let name = Namespace::new(ns).expect("namespace").stream(Topic::Dlq);
    let Ok(mut stream) = js.get_stream(&name).await else {
        return Vec::new();
    };
    let Ok(info) = stream.info().await else {
        return Vec::new();
    };
    let (first, last, count) = (
        info.state.first_sequence,
        info.state.last_sequence,
        info.state.messages,
    );
    let mut out = Vec::new();
    for seq in first..=last {
        if count == 0 {
            break;
        }
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        let h = |name: &str| m.headers.get(name).map(|v| v.as_str().to_owned());
        out.push(DeadLetter {
            sequence: h(awfdrs_bus::headers::DLQ_SEQUENCE).and_then(|s| s.parse().ok()),
            reason: h(awfdrs_bus::headers::DLQ_REASON).unwrap_or_default(),
            payload: Some(m.payload.to_vec()),
        });
    }
    out
}

/// The dead letter of the message stored at `sequence`, or one holding
/// exactly `payload`.
pub fn dead_letter_of<'a>(
    dead: &'a [DeadLetter],
    sequence: Option<u64>,
    payload: &[u8],
) -> Option<&'a DeadLetter> {
    dead.iter()
        .find(|d| sequence.is_some() && d.sequence == sequence)
        .or_else(|| dead.iter().find(|d| d.payload.as_deref() == Some(payload)))
}

/// The recorded dead letter `id` (its full payload included).
pub async fn dead_letter_row(ctx: &Context, id: i64) -> awfdrs_store::DeadLetterRecord {
    ctx.store
        .dead_letter(id)
        .await
        .unwrap_or_else(|e| panic!("dead letter {id}: {e}"))
}
