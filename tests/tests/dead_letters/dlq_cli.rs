//! Operators list, show and replay dead letters with `awfdrs dlq`; a
//! replayed message is validated again.

use awfdrs_bus::{Outgoing, Stage, headers};
use awfdrs_tests::{System, World, awfdrs_bin, dead_letter_row, eventually, failure};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::WAIT;

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
