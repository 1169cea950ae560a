//! A PostgreSQL outage longer than every delivery, behind a proxy the
//! test takes down and brings back: nothing is dead-lettered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use awfdrs_bus::Outgoing;
use awfdrs_telemetry::TaskState;
use awfdrs_tests::{World, cleanup, eventually, success};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::WAIT;

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
