//! The streams and consumers of a namespace, against real JetStream: every
//! subject of the remediation contract lands in a declared stream, and each
//! stage's consumer reads what the stage before it publishes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use awfdrs_bus::{Bus, BusError, Outgoing, Stage};
use awfdrs_tests::{World, cleanup};
use bytes::Bytes;

/// One subject of each kind the pipeline publishes.
fn contract_subjects(bus: &Bus) -> Vec<String> {
    let ns = bus.ns();
    vec![
        ns.events_subject("acme", "checkout"),
        ns.incident_opened("acme"),
        ns.incident_reopened("acme"),
        ns.decisions("acme"),
        ns.escalations("acme"),
        ns.retry_command("acme", "checkout"),
        ns.dlq(Stage::Scheduler),
    ]
}

async fn publish(bus: &Bus, subject: &str, id: &str) -> Result<(), BusError> {
    bus.publish(Outgoing {
        subject: subject.to_owned(),
        msg_id: id.to_owned(),
        correlation_id: None,
        headers: Vec::new(),
        payload: Bytes::from_static(b"{}"),
    })
    .await
    .map(|_| ())
}

#[tokio::test]
async fn every_contract_subject_is_stored_until_the_streams_are_deleted() {
    let world = World::new().await;
    let ctx = world.context(&[]).await;
    let subjects = contract_subjects(&ctx.bus);
    for (i, subject) in subjects.iter().enumerate() {
        let stored = publish(&ctx.bus, subject, &format!("stored-{i}")).await;
        assert!(stored.is_ok(), "{subject}: {stored:?}");
    }

    ctx.bus.delete_streams().await.unwrap();
    for (i, subject) in subjects.iter().enumerate() {
        let refused = publish(&ctx.bus, subject, &format!("refused-{i}")).await;
        assert!(refused.is_err(), "{subject} still has a stream");
    }
    cleanup(&ctx, &world).await;
}

#[tokio::test]
async fn the_analyzer_reads_incidents_and_the_scheduler_has_no_consumer() {
    let world = World::new().await;
    let ctx = world.context(&[]).await;
    let settings = ctx.consumer_settings();
    ctx.bus
        .declare_consumer(Stage::Analyzer, &settings)
        .await
        .unwrap();
    let ns = ctx.bus.ns();
    publish(&ctx.bus, &ns.incident_opened("acme"), "opened")
        .await
        .unwrap();
    publish(&ctx.bus, &ns.incident_reopened("acme"), "reopened")
        .await
        .unwrap();
    publish(&ctx.bus, &ns.decisions("acme"), "decision")
        .await
        .unwrap();
    assert_eq!(
        ctx.bus.consumer_backlog(Stage::Analyzer).await.unwrap(),
        2,
        "both incident messages, and not the decision"
    );

    let none = ctx.bus.declare_consumer(Stage::Scheduler, &settings).await;
    assert!(
        matches!(none, Err(BusError::Topology(_))),
        "the scheduler reads no stream: {none:?}"
    );
    cleanup(&ctx, &world).await;
}
