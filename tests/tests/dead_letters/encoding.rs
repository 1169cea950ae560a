//! Hostile values in a dead letter or an outbox message never reach a
//! header raw, and a message too big to copy is still recorded whole.

use awfdrs_bus::{Outgoing, Stage, headers};
use awfdrs_tests::{System, dead_letter_row, eventually, failure, success};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;

use crate::WAIT;

#[tokio::test]
async fn a_hostile_field_name_and_correlation_id_are_dead_lettered_encoded_and_the_detector_lives_on()
 {
    let sys = System::start(&[]).await;
    let (tenant, _) = sys.tenant("acme").await;
    let mut dlq = sys
        .ctx
        .bus
        .subscribe(sys.ns().dlq(Stage::Detector))
        .await
        .unwrap();
    let subject = sys.ns().events_subject("acme", "checkout");
    let mut hostile = failure("k-hostile", "checkout", "gateway_timeout");
    hostile["a\nb"] = json!(1);
    hostile["correlation_id"] = json!("x\ny");
    let hostile = Bytes::from(hostile.to_string());
    sys.ctx
        .bus
        .publish_core(
            subject.clone(),
            vec![(headers::CORRELATION_ID, "x\ny".to_owned())],
            hostile.clone(),
        )
        .await
        .unwrap();

    let m = tokio::time::timeout(WAIT, dlq.next())
        .await
        .expect("a dead-letter notification")
        .unwrap();
    assert_eq!(m.payload, hostile);
    let raw = m.raw_header(headers::DLQ_REASON).unwrap();
    assert!(!raw.contains(['\r', '\n']), "{raw:?}");
    assert!(raw.contains(r"a\nb"), "the field name is escaped: {raw:?}");
    assert_eq!(m.raw_header(headers::CORRELATION_ID), Some("x%0Ay"));
    assert_eq!(m.header(headers::CORRELATION_ID), Some("x\ny"));
    let id: i64 = m.header(headers::DLQ_RECORD).unwrap().parse().unwrap();
    let row = dead_letter_row(&sys.ctx, id).await;
    assert_eq!(m.header(headers::DLQ_REASON), Some(row.reason.as_str()));
    assert!(row.reason.contains("unknown field"), "{}", row.reason);
    assert!(row.reason.contains('a') && row.reason.contains('b'));
    assert_eq!(row.payload, hostile.to_vec());
    assert_eq!(row.subject, subject);

    // The detector lives on and handles the next message.
    sys.ctx
        .bus
        .publish_core(
            subject,
            Vec::new(),
            Bytes::from(success("k-next", "checkout").to_string()),
        )
        .await
        .unwrap();
    eventually(WAIT, "the next event stored", || async {
        (sys.rows("events", tenant.id).await == 1).then_some(())
    })
    .await;
    sys.stop().await;
}

#[tokio::test]
async fn the_outbox_relay_publishes_a_hostile_correlation_id_encoded_and_lives_on() {
    let sys = System::start(&[]).await;
    let (tenant, _) = sys.tenant("acme").await;
    let subject = sys.ns().incident_opened("acme");
    let mut opened = sys.ctx.bus.subscribe(subject.clone()).await.unwrap();
    for (msg_id, correlation_id) in [("m-hostile", "x\ny"), ("m-next", "plain")] {
        sqlx::query(
            "INSERT INTO outbox (tenant_id, subject, msg_id, payload, correlation_id)
             VALUES ($1, $2, $3, '{}'::jsonb, $4)",
        )
        .bind(tenant.id)
        .bind(&subject)
        .bind(format!("{}-{msg_id}", sys.ns().as_str()))
        .bind(correlation_id)
        .execute(sys.ctx.store.pool())
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(WAIT, opened.next())
            .await
            .expect("the sweeper published")
            .unwrap();
        seen.push((
            m.raw_header(headers::CORRELATION_ID).map(str::to_owned),
            m.header(headers::CORRELATION_ID).map(str::to_owned),
        ));
    }
    assert!(
        seen.contains(&(Some("x%0Ay".into()), Some("x\ny".into()))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(Some("plain".into()), Some("plain".into()))),
        "{seen:?}"
    );
    eventually(WAIT, "both rows marked published", || async {
        (sys.ctx.store.outbox_backlog().await.unwrap() == 0).then_some(())
    })
    .await;
    sys.stop().await;
}

#[tokio::test]
async fn a_message_too_big_to_copy_is_recorded_with_its_full_payload() {
    let sys = System::start(&[]).await;
    sys.tenant("acme").await;
    let mut dlq = sys
        .ctx
        .bus
        .subscribe(sys.ns().dlq(Stage::Detector))
        .await
        .unwrap();
    // As big as the broker takes: payload and dead-letter headers cannot
    // travel together.
    let max = sys.ctx.bus.max_payload();
    let mut payload = b"{\"oops\": ".to_vec();
    payload.resize(max - 200, b'x');
    sys.ctx
        .bus
        .publish(Outgoing {
            subject: sys.ns().events_subject("acme", "checkout"),
            msg_id: uuid::Uuid::new_v4().to_string(),
            correlation_id: None,
            headers: Vec::new(),
            payload: Bytes::from(payload.clone()),
        })
        .await
        .unwrap();
    let m = tokio::time::timeout(WAIT, dlq.next())
        .await
        .expect("a dead-letter notification")
        .unwrap();
    assert_eq!(m.header(headers::DLQ_PAYLOAD), Some("omitted"));
    assert!(m.payload.is_empty());
    let id: i64 = m.header(headers::DLQ_RECORD).unwrap().parse().unwrap();
    let row = dead_letter_row(&sys.ctx, id).await;
    assert_eq!(row.payload.len(), payload.len());
    assert!(row.payload == payload, "the payload is stored whole");
    assert!(row.reason.contains("malformed JSON"), "{}", row.reason);
    eventually(WAIT, "the original terminated", || async {
        (sys.ctx.bus.consumer_backlog(Stage::Detector).await.unwrap() == 0).then_some(())
    })
    .await;
    sys.stop().await;
}
