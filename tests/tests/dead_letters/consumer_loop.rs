//! The consumer loop over a test handler: a panic costs only its own
//! message, and an unavailable dependency spends no delivery.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use awfdrs_bus::consumer::{self, ConsumerSpec};
use awfdrs_bus::topology::ConsumerSettings;
use awfdrs_bus::{Delivery, Handler, Outcome, Outgoing, Stage};
use awfdrs_tests::{World, cleanup, eventually};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::WAIT;

/// Acks every message, except that it panics on `boom` and says the
/// database is down while `down` is set.
#[derive(Default)]
struct TestHandler {
    handled: Mutex<Vec<(String, i64)>>,
    down: AtomicBool,
    refused: AtomicUsize,
}

impl Handler for TestHandler {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        if batch.iter().any(|d| d.payload.as_ref() == b"boom") {
            panic!("boom in a batch of {}", batch.len());
        }
        if self.down.load(Ordering::SeqCst) {
            self.refused.fetch_add(batch.len(), Ordering::SeqCst);
            return vec![Outcome::Unavailable("database unavailable: test".into()); batch.len()];
        }
        let mut handled = self.handled.lock().unwrap();
        for d in batch {
            handled.push((
                String::from_utf8_lossy(&d.payload).into_owned(),
                d.delivered,
            ));
        }
        vec![Outcome::Ack; batch.len()]
    }

    async fn ready(&self) -> bool {
        !self.down.load(Ordering::SeqCst)
    }
}

type LoopTask = tokio::task::JoinHandle<Result<(), awfdrs_bus::BusError>>;

fn spec(settings: ConsumerSettings) -> ConsumerSpec {
    ConsumerSpec {
        stage: Stage::Detector,
        settings,
        batch_size: 10,
        linger: Duration::from_millis(200),
        nak_base: Duration::from_millis(50),
        nak_max: Duration::from_millis(200),
        in_flight: 1,
    }
}

/// A consumer loop of `ctx`'s durable consumer over `handler`.
fn spawn_loop(
    ctx: &awfdrs_runtime::Context,
    settings: &ConsumerSettings,
    handler: Arc<TestHandler>,
    stop: &CancellationToken,
) -> LoopTask {
    tokio::spawn(consumer::run(
        ctx.bus.clone(),
        spec(settings.clone()),
        handler,
        ctx.dead_letter_sink(),
        ctx.metrics.clone(),
        ctx.health.task("test.consumer"),
        stop.clone(),
    ))
}

/// A context with the detector's consumer declared, and one loop.
async fn start_loop(
    world: &World,
    settings: &ConsumerSettings,
) -> (
    awfdrs_runtime::Context,
    Arc<TestHandler>,
    CancellationToken,
    LoopTask,
) {
    let ctx = world.context(&[]).await;
    ctx.bus
        .declare_consumer(Stage::Detector, settings)
        .await
        .unwrap();
    let handler = Arc::new(TestHandler::default());
    let stop = CancellationToken::new();
    let task = spawn_loop(&ctx, settings, handler.clone(), &stop);
    (ctx, handler, stop, task)
}

async fn publish(ctx: &awfdrs_runtime::Context, payload: &'static str) {
    ctx.bus
        .publish(Outgoing {
            subject: ctx.bus.ns().events_subject("acme", "checkout"),
            msg_id: uuid::Uuid::new_v4().to_string(),
            correlation_id: None,
            headers: Vec::new(),
            payload: Bytes::from_static(payload.as_bytes()),
        })
        .await
        .unwrap();
}

fn handled(h: &TestHandler) -> Vec<String> {
    h.handled
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect()
}

#[tokio::test]
async fn a_handler_panic_dead_letters_only_its_message_and_the_loop_lives_on() {
    let world = World::new().await;
    let settings = ConsumerSettings {
        max_deliver: 3,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 100,
    };
    let (ctx, handler, stop, task) = start_loop(&world, &settings).await;
    for p in ["a", "boom", "b"] {
        publish(&ctx, p).await;
    }
    let reason: String = eventually(WAIT, "the panicking message dead-lettered", || async {
        sqlx::query_scalar("SELECT reason FROM dead_letters WHERE payload = 'boom'")
            .fetch_optional(ctx.store.pool())
            .await
            .unwrap()
    })
    .await;
    assert!(reason.starts_with("handler panicked: boom"), "{reason}");
    eventually(WAIT, "the others handled", || async {
        let h = handled(&handler);
        (h.contains(&"a".to_owned()) && h.contains(&"b".to_owned())).then_some(())
    })
    .await;
    publish(&ctx, "c").await;
    eventually(WAIT, "the next message handled", || async {
        handled(&handler).contains(&"c".to_owned()).then_some(())
    })
    .await;
    assert!(!task.is_finished(), "the loop lives on");
    assert!(!handled(&handler).contains(&"boom".to_owned()));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(ctx.store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
    stop.cancel();
    task.await.unwrap().unwrap();
    cleanup(&ctx, &world).await;
}

#[tokio::test]
async fn while_a_dependency_is_down_messages_are_held_without_spending_deliveries() {
    let world = World::new().await;
    // Held far longer than ack_wait and max_deliver would allow if the loop
    // nak'd or let the ack wait run out: a second loop, whose handler
    // works, would be given the redeliveries.
    let settings = ConsumerSettings {
        max_deliver: 2,
        ack_wait: Duration::from_secs(1),
        max_ack_pending: 100,
    };
    let (ctx, handler, stop, first) = start_loop(&world, &settings).await;
    handler.down.store(true, Ordering::SeqCst);
    for p in ["one", "two", "three"] {
        publish(&ctx, p).await;
    }
    // Wait until the loop holds them (the stream has them delivered), then
    // several ack waits more.
    eventually(WAIT, "the messages refused", || async {
        (handler.refused.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    let other = Arc::new(TestHandler::default());
    let second = spawn_loop(&ctx, &settings, other.clone(), &stop);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(handled(&handler).is_empty());
    assert!(
        handled(&other).is_empty(),
        "held messages were redelivered: {:?}",
        handled(&other)
    );
    handler.down.store(false, Ordering::SeqCst);
    eventually(WAIT, "the held messages handled", || async {
        (handler.handled.lock().unwrap().len() == 3).then_some(())
    })
    .await;
    let deliveries: Vec<i64> = handler
        .handled
        .lock()
        .unwrap()
        .iter()
        .map(|(_, d)| *d)
        .collect();
    assert_eq!(deliveries, vec![1, 1, 1], "no delivery was spent");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(ctx.store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0, "nothing dead-lettered");
    eventually(WAIT, "the consumer settled", || async {
        (ctx.bus.consumer_backlog(Stage::Detector).await.unwrap() == 0).then_some(())
    })
    .await;
    // And it fetches again (one of the two loops takes it).
    publish(&ctx, "four").await;
    eventually(WAIT, "a new message handled", || async {
        (handled(&handler).contains(&"four".to_owned())
            || handled(&other).contains(&"four".to_owned()))
        .then_some(())
    })
    .await;
    stop.cancel();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    cleanup(&ctx, &world).await;
}
