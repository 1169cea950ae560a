//! Deliveries: as published and signed, tried again honouring
//! `Retry-After`, with the secret of the latest PUT, never to a removed
//! callback or a private address.

use std::time::Duration;

use awfdrs_domain::RetryCommandV1;
use awfdrs_tests::{eventually, failure};
use axum::http::HeaderValue;
use futures::StreamExt;
use serde_json::Value;
use standardwebhooks::Webhook;
use uuid::Uuid;

use crate::support::{
    Receiver, ReplaceFirst as _, WAIT, delete_callback, delivery, register, start, verify,
};

#[tokio::test]
async fn a_registered_callback_receives_the_retry_command_as_published_and_signed() {
    let (sys, rules) = start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let (_, other_key) = sys.tenant("globex").await;
    let receiver = Receiver::start(&[]).await;
    let others = Receiver::start(&[]).await;
    let secret = register(&sys, &key, "checkout", &receiver.url).await;
    // Another tenant's callback on the same workflow is its own.
    register(&sys, &other_key, "checkout", &others.url).await;
    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{}.commands.>", sys.ns().as_str()))
        .await
        .unwrap();
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("order-1-charge-1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let msg = tokio::time::timeout(WAIT, commands.next())
        .await
        .expect("a retry command")
        .unwrap();
    let command: RetryCommandV1 = serde_json::from_slice(&msg.payload).unwrap();
    let msg_id = format!("retry:{}:1", command.action_id);
    assert_eq!(msg.header("Nats-Msg-Id"), Some(msg_id.as_str()));

    let got = receiver.wait_for(1).await;
    let r = &got[0];
    assert_eq!(r.body, msg.payload.to_vec(), "the body as published");
    assert_eq!(r.header("webhook-id"), msg_id);
    assert_eq!(r.header("content-type"), "application/json");
    verify(&secret, r).expect("signed with the callback's secret");

    // The receiver's check refuses what a real delivery is not.
    let mut empty = r.clone();
    empty
        .headers
        .insert("webhook-signature", HeaderValue::from_static(""));
    assert!(verify(&secret, &empty).is_err(), "an empty signature");
    let mut stale = r.clone();
    let old = chrono::Utc::now().timestamp() - 6 * 60;
    let resigned = Webhook::new(&secret)
        .unwrap()
        .sign(&msg_id, old, &r.body)
        .unwrap();
    stale.headers.insert("webhook-timestamp", old.into());
    stale
        .headers
        .insert("webhook-signature", resigned.parse().unwrap());
    assert!(
        matches!(
            verify(&secret, &stale),
            Err(standardwebhooks::WebhookError::TimestampTooOldError)
        ),
        "a timestamp over 5 minutes old"
    );
    let wrong = awfdrs_domain::webhook::new_secret();
    let mut forged = r.clone();
    let sig = Webhook::new(&wrong)
        .unwrap()
        .sign(&msg_id, chrono::Utc::now().timestamp(), &r.body)
        .unwrap();
    forged
        .headers
        .insert("webhook-signature", sig.parse().unwrap());
    assert!(
        matches!(
            verify(&secret, &forged),
            Err(standardwebhooks::WebhookError::InvalidSignature)
        ),
        "a signature made with another secret"
    );
    let mut tampered = r.clone();
    tampered.body = r.body.replace_first(b"checkout", b"checkouT");
    assert!(verify(&secret, &tampered).is_err(), "another body");

    // The outcome is on the action.
    let action: Value = eventually(WAIT, "the callback on the action", || async {
        let (_, list) = sys.get("/api/v1/actions?kind=retry", &key).await;
        let a = list["items"][0].clone();
        (a["callback"]["status"] == "DELIVERED").then_some(a)
    })
    .await;
    assert_eq!(action["id"], command.action_id.to_string());
    assert_eq!(action["callback"]["tries"], 1);
    assert_eq!(action["callback"]["last_status_code"], 200);
    assert!(action["callback"]["delivered_at"].is_string());
    let (_, incident) = sys
        .get(&format!("/api/v1/incidents/{}", command.incident_id), &key)
        .await;
    assert_eq!(incident["actions"][0]["callback"]["status"], "DELIVERED");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.got().len(), 1, "delivered once");
    assert!(
        others.got().is_empty(),
        "another tenant's callback got nothing"
    );
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}

#[tokio::test]
async fn a_failed_try_is_tried_again_with_the_same_id_no_sooner_than_retry_after() {
    let (sys, rules) = start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[(500, Some("2"))]).await;
    let secret = register(&sys, &key, "checkout", &receiver.url).await;
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("order-2-charge-1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let got = receiver.wait_for(2).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(got[0].body, got[1].body);
    for r in &got {
        verify(&secret, r).unwrap();
    }
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(1900),
        "Retry-After: 2 honoured: {:?}",
        got[1].at - got[0].at
    );
    let action = Uuid::parse_str(
        got[0]
            .header("webhook-id")
            .split(':')
            .nth(1)
            .expect("retry:<action>:<attempt>"),
    )
    .unwrap();
    let recorded = eventually(WAIT, "the delivery recorded", || async {
        delivery(&sys, action).await.filter(|d| d.0 == "DELIVERED")
    })
    .await;
    assert_eq!(recorded, ("DELIVERED".to_owned(), 2, Some(200)));
    let tries: Vec<(i32, Option<i32>, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT t.try, t.status_code, t.outcome, t.started_at FROM callback_tries t
         JOIN callback_deliveries d ON d.id = t.delivery_id WHERE d.action_id = $1 ORDER BY t.try",
    )
    .bind(action)
    .fetch_all(sys.ctx.store.pool())
    .await
    .unwrap();
    assert_eq!(tries.len(), 2, "{tries:?}");
    assert_eq!((tries[0].1, tries[0].2.as_str()), (Some(500), "retried"));
    assert_eq!((tries[1].1, tries[1].2.as_str()), (Some(200), "delivered"));
    assert!(
        tries[1].3 - tries[0].3 >= chrono::Duration::seconds(2),
        "the second try started 2 s after the first at the earliest: {tries:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.got().len(), 2, "nothing more once delivered");
    let metrics = sys.ctx.metrics.render();
    assert!(
        metrics.contains("awfdrs_callback_deliveries_total{outcome=\"retried\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("awfdrs_callback_deliveries_total{outcome=\"delivered\"} 1"));
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}

#[tokio::test]
async fn a_second_put_rotates_the_secret_and_a_removed_callback_gets_nothing() {
    let (sys, rules) = start(&[]).await;
    let (_, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[]).await;
    let first = register(&sys, &key, "checkout", &receiver.url).await;
    let second = register(&sys, &key, "checkout", &receiver.url).await;
    assert_ne!(first, second, "a new secret");
    register(&sys, &key, "payouts", &receiver.url).await;
    assert_eq!(delete_callback(&sys, &key, "payouts").await, 204);
    assert_eq!(delete_callback(&sys, &key, "payouts").await, 404);

    let mut commands = sys
        .ctx
        .bus
        .subscribe(format!("{}.commands.>", sys.ns().as_str()))
        .await
        .unwrap();
    for (k, workflow) in [("p-1", "payouts"), ("c-1", "checkout")] {
        let (status, _) = sys
            .post(
                "/api/v1/events",
                &key,
                &failure(k, workflow, "payment_timeout"),
            )
            .await;
        assert_eq!(status, 202);
    }
    let mut fired = Vec::new();
    while fired.len() < 2 {
        let msg = tokio::time::timeout(WAIT, commands.next())
            .await
            .expect("both retries fired")
            .unwrap();
        let c: RetryCommandV1 = serde_json::from_slice(&msg.payload).unwrap();
        fired.push(c);
    }
    let got = receiver.wait_for(1).await;
    let checkout = fired.iter().find(|c| c.workflow_id == "checkout").unwrap();
    assert_eq!(got[0].header("webhook-id"), checkout.msg_id());
    verify(&second, &got[0]).expect("signed with the rotated secret");
    assert!(verify(&first, &got[0]).is_err(), "not with the old one");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.got().len(), 1, "the removed callback got nothing");
    let payouts = fired.iter().find(|c| c.workflow_id == "payouts").unwrap();
    assert_eq!(delivery(&sys, payouts.action_id).await, None);
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}

#[tokio::test]
async fn a_private_address_is_refused_again_at_delivery() {
    // A URL that passed at registration but whose host now resolves to a
    // loopback address (the registration is written straight to the store,
    // as a name rebound after its check would be) is not connected to.
    let (sys, rules) = start(&[
        ("AWFDRS__NOTIFICATIONS__ALLOW_PRIVATE_TARGETS", "false"),
        ("AWFDRS__SCHEDULER__CALLBACK_MAX_TRIES", "1"),
    ])
    .await;
    let (tenant, key) = sys.tenant("acme").await;
    let receiver = Receiver::start(&[]).await;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    sys.ctx
        .store
        .set_callback(
            tenant.id,
            "checkout",
            &by_name,
            &awfdrs_domain::webhook::new_secret(),
        )
        .await
        .unwrap();
    let (status, _) = sys
        .post(
            "/api/v1/events",
            &key,
            &failure("order-3-charge-1", "checkout", "payment_timeout"),
        )
        .await;
    assert_eq!(status, 202);
    let (state, error): (String, Option<String>) =
        eventually(WAIT, "the delivery given up", || async {
            sqlx::query_as::<_, (String, Option<String>)>(
                "SELECT status, last_error FROM callback_deliveries WHERE status <> 'PENDING'",
            )
            .fetch_optional(sys.ctx.store.pool())
            .await
            .unwrap()
        })
        .await;
    assert_eq!(state, "FAILED");
    let error = error.unwrap_or_default();
    assert!(error.contains("not allowed"), "{error}");
    assert!(error.contains("gave up after 1 try"), "{error}");
    assert!(receiver.got().is_empty(), "nothing reached the receiver");
    let (_, list) = sys.get("/api/v1/actions?kind=retry", &key).await;
    assert_eq!(list["items"][0]["callback"]["status"], "FAILED");
    sys.stop().await;
    let _ = std::fs::remove_dir_all(rules);
}
