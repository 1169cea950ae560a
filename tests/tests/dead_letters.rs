//! Dead letters: hostile values never reach a header raw, every dead letter
//! is recorded in full before its original is terminated, a handler's panic
//! costs only its own message, a dependency outage spends no delivery, and
//! operators list, show and replay dead letters with `awfdrs dlq`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use awfdrs_bus::consumer::{self, ConsumerSpec};
use awfdrs_bus::topology::ConsumerSettings;
use awfdrs_bus::{Delivery, Handler, Outcome, Outgoing, Stage, headers};
use awfdrs_telemetry::TaskState;
use awfdrs_tests::{
    System, World, awfdrs_bin, cleanup, dead_letter_row, eventually, failure, success,
};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

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

async fn awfdrs(world: &World, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(awfdrs_bin())
        .args(args)
        .env_clear()
        .envs(world.env(&[]))
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("run awfdrs")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn dlq_list_show_and_replay_work_and_a_replay_is_validated_again() {
    let sys = System::start(&[]).await;
    let mut dlq = sys
        .ctx
        .bus
        .subscribe(sys.ns().dlq(Stage::Detector))
        .await
        .unwrap();
    // A tenant the detector does not know yet: dead-lettered.
    let body = Bytes::from(failure("k-ghost", "checkout", "gateway_timeout").to_string());
    sys.ctx
        .bus
        .publish(Outgoing {
            subject: sys.ns().events_subject("ghost", "checkout"),
            msg_id: uuid::Uuid::new_v4().to_string(),
            correlation_id: Some("corr-ghost".into()),
            headers: Vec::new(),
            payload: body.clone(),
        })
        .await
        .unwrap();
    let m = tokio::time::timeout(WAIT, dlq.next())
        .await
        .unwrap()
        .unwrap();
    let id = m.header(headers::DLQ_RECORD).unwrap().to_owned();

    let list: Value = serde_json::from_str(&ok(&awfdrs(
        &sys.world,
        &["dlq", "list", "--stage", "detector", "--json"],
    )
    .await))
    .unwrap();
    let item = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"].as_i64().map(|n| n.to_string()).as_deref() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("{id} not in {list}"));
    assert!(item["reason"].as_str().unwrap().contains("unknown tenant"));
    assert_eq!(item["payload_bytes"], body.len());
    let table = ok(&awfdrs(&sys.world, &["dlq", "list"]).await);
    assert!(table.contains("unknown tenant"), "{table}");
    let other = ok(&awfdrs(&sys.world, &["dlq", "list", "--stage", "nothing", "--json"]).await);
    assert_eq!(serde_json::from_str::<Value>(&other).unwrap(), json!([]));

    let shown: Value =
        serde_json::from_str(&ok(&awfdrs(&sys.world, &["dlq", "show", &id]).await)).unwrap();
    assert_eq!(shown["payload"], String::from_utf8_lossy(&body).as_ref());
    assert_eq!(shown["stage"], "detector");
    assert_eq!(shown["replay_count"], 0);
    let raw = awfdrs(&sys.world, &["dlq", "show", &id, "--payload"]).await;
    ok(&raw);
    assert_eq!(raw.stdout, body.to_vec());
    let missing = awfdrs(&sys.world, &["dlq", "show", "999999"]).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no dead letter 999999"));

    // Replayed once the tenant exists: validated again, and stored.
    let (ghost, _) = sys.tenant("ghost").await;
    let out = ok(&awfdrs(&sys.world, &["dlq", "replay", &id]).await);
    assert!(out.contains(&format!("replay:{id}:1")), "{out}");
    eventually(WAIT, "the replayed event stored", || async {
        (sys.rows("events", ghost.id).await == 1).then_some(())
    })
    .await;
    let correlation: String =
        sqlx::query_scalar("SELECT correlation_id FROM events WHERE tenant_id = $1")
            .bind(ghost.id)
            .fetch_one(sys.ctx.store.pool())
            .await
            .unwrap();
    assert_eq!(correlation, "corr-ghost");
    let row = dead_letter_row(&sys.ctx, id.parse().unwrap()).await;
    assert_eq!(row.replay_count, 1);
    assert!(row.replayed_at.is_some());
    let again = ok(&awfdrs(&sys.world, &["dlq", "replay", &id]).await);
    assert!(again.contains(&format!("replay:{id}:2")), "{again}");
    assert_eq!(
        dead_letter_row(&sys.ctx, id.parse().unwrap())
            .await
            .replay_count,
        2
    );
    sys.stop().await;
}

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

/// A TCP proxy to PostgreSQL that can be taken down (connections cut, new
/// ones refused) and brought back on the same port.
struct Proxy {
    port: u16,
    target: std::net::SocketAddr,
    period: Mutex<Option<CancellationToken>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Arc::new(Self {
            port: listener.local_addr().unwrap().port(),
            target,
            period: Mutex::new(None),
        });
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let token = CancellationToken::new();
        let (target, t) = (self.target, token.clone());
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    () = t.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(c) => c,
                        Err(_) => continue,
                    },
                };
                let t = t.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = t.cancelled() => {}
                    }
                });
            }
        });
        *self.period.lock().unwrap() = Some(token);
    }

    fn down(&self) {
        if let Some(t) = self.period.lock().unwrap().take() {
            t.cancel();
        }
    }

    async fn up(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }
}

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn a_postgres_outage_longer_than_every_delivery_dead_letters_nothing() {
    use sqlx::ConnectOptions as _;
    let world = World::new().await;
    let direct = world.context(&[]).await;
    let key = awfdrs_domain::new_api_key();
    direct.store.create_tenant("acme", &key).await.unwrap();
    let options: sqlx::postgres::PgConnectOptions = world.database_url.parse().unwrap();
    let target = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let proxied = options.port(proxy.port).to_url_lossy().to_string();
    // Every delivery would be spent within a few seconds if the detector
    // nak'd while the database is away.
    let ctx = world
        .context(&[
            ("DATABASE_URL", proxied.as_str()),
            ("AWFDRS__CONSUMER__ACK_WAIT_SECS", "1"),
            ("AWFDRS__CONSUMER__MAX_DELIVER", "2"),
            ("AWFDRS__DATABASE__ACQUIRE_TIMEOUT_MS", "500"),
        ])
        .await;
    let shutdown = CancellationToken::new();
    let detector = awfdrs_tests::run_detector(ctx.clone(), shutdown.clone()).await;
    let publish_event = |key: String| {
        let bus = ctx.bus.clone();
        async move {
            bus.publish(Outgoing {
                subject: bus.ns().events_subject("acme", "checkout"),
                msg_id: key.clone(),
                correlation_id: None,
                headers: Vec::new(),
                payload: Bytes::from(success(&key, "checkout").to_string()),
            })
            .await
            .unwrap();
        }
    };
    let pool = direct.store.pool().clone();
    publish_event("before".into()).await;
    eventually(WAIT, "the first event stored", || async {
        (count(&pool, "SELECT count(*) FROM events").await == 1).then_some(())
    })
    .await;

    proxy.down();
    for i in 0..10 {
        publish_event(format!("during-{i}")).await;
    }
    // Far longer than max_deliver × ack_wait.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(count(&pool, "SELECT count(*) FROM dead_letters").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM events").await, 1);
    // The loop says why it does not work, for /ready.
    match &ctx.health.snapshot()["detector.consumer.0"] {
        TaskState::Degraded(reason) => assert!(
            reason.contains("a dependency is down; holding"),
            "the reason names the hold: {reason}"
        ),
        other => panic!("the consumer loop is degraded while holding, not {other:?}"),
    }

    proxy.up().await;
    eventually(WAIT, "every event stored after the outage", || async {
        (count(&pool, "SELECT count(*) FROM events").await == 11).then_some(())
    })
    .await;
    assert_eq!(count(&pool, "SELECT count(*) FROM dead_letters").await, 0);
    assert!(!detector.is_finished(), "the detector lives on");
    eventually(WAIT, "the consumer loop healthy again", || async {
        (ctx.health.snapshot()["detector.consumer.0"] == TaskState::Ok).then_some(())
    })
    .await;
    shutdown.cancel();
    detector.await.unwrap().unwrap();
    ctx.store.pool().close().await;
    cleanup(&direct, &world).await;
}
