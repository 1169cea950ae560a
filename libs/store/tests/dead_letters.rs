//! Dead letters, against a fresh database per test.

use awfdrs_store::{NewDeadLetter, Store, StoreError};
use sqlx::PgPool;

fn letter<'a>(consumer: &'a str, seq: i64, reason: &'a str) -> NewDeadLetter<'a> {
    NewDeadLetter {
        stage: "detector",
        subject: "t.events.acme",
        stream_sequence: seq,
        delivered: 5,
        consumer,
        reason,
        headers: serde_json::json!({ "Nats-Msg-Id": "m1", "X-Count": 3 }),
        payload: b"{\"bad\":true}",
    }
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn recording_is_idempotent_per_consumer_and_sequence(pool: PgPool) {
    let store = Store::from_pool(pool);
    let first = store
        .record_dead_letter(&letter("det", 7, "first"))
        .await
        .unwrap();
    let again = store
        .record_dead_letter(&letter("det", 7, "second"))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(store.dead_letter(first).await.unwrap().reason, "second");
    let other_consumer = store
        .record_dead_letter(&letter("other", 7, "x"))
        .await
        .unwrap();
    let other_seq = store
        .record_dead_letter(&letter("det", 8, "x"))
        .await
        .unwrap();
    assert_ne!(other_consumer, first);
    assert_ne!(other_seq, first);
    assert_eq!(store.dead_letters(None, 100).await.unwrap().len(), 3);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_shown_letter_keeps_its_payload_and_headers_as_strings(pool: PgPool) {
    let store = Store::from_pool(pool);
    let id = store
        .record_dead_letter(&letter("det", 1, "bad\0reason"))
        .await
        .unwrap();
    let d = store.dead_letter(id).await.unwrap();
    assert_eq!(d.payload, b"{\"bad\":true}");
    assert_eq!(d.reason, "bad\\0reason");
    assert_eq!(d.header("nats-msg-id"), Some("m1"));
    assert_eq!(d.header("X-Count"), Some("3"));
    assert_eq!(d.consumer, "det");
    let err = store.dead_letter(id + 1000).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn the_list_is_newest_first_and_filtered_by_stage(pool: PgPool) {
    let store = Store::from_pool(pool);
    let a = store
        .record_dead_letter(&letter("det", 1, "a"))
        .await
        .unwrap();
    let b = store
        .record_dead_letter(&letter("det", 2, "b"))
        .await
        .unwrap();
    let mut analyzer = letter("ana", 1, "c");
    analyzer.stage = "analyzer";
    let c = store.record_dead_letter(&analyzer).await.unwrap();
    let ids: Vec<i64> = store
        .dead_letters(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, [c, b, a]);
    let det = store.dead_letters(Some("detector"), 10).await.unwrap();
    assert_eq!(det.iter().map(|d| d.id).collect::<Vec<_>>(), [b, a]);
    assert_eq!(det[0].payload_bytes, 12);
    assert_eq!(store.dead_letters(None, 1).await.unwrap().len(), 1);
}

#[sqlx::test(migrator = "awfdrs_store::MIGRATOR")]
async fn a_replay_is_recorded_once_per_count(pool: PgPool) {
    let store = Store::from_pool(pool);
    let id = store
        .record_dead_letter(&letter("det", 1, "a"))
        .await
        .unwrap();
    assert!(store.mark_dead_letter_replayed(id, 1).await.unwrap());
    assert!(!store.mark_dead_letter_replayed(id, 1).await.unwrap());
    assert!(!store.mark_dead_letter_replayed(id, 3).await.unwrap());
    assert!(store.mark_dead_letter_replayed(id, 2).await.unwrap());
    let d = store.dead_letter(id).await.unwrap();
    assert_eq!(d.replay_count, 2);
    assert!(d.replayed_at.is_some());
}
