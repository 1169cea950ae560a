//! Message ids and the one arbiter of a key: whichever transport a body
//! comes by, one body is stored under a key, and every answer says which.

use std::time::Duration;

use awfdrs_tests::{body_hash, failure};
use bytes::Bytes;
use serde_json::json;

use crate::case::{ev, ev_with};
use crate::harness::H;

/// The event id the gateway used as `Nats-Msg-Id` up to now: a UUIDv5 of
/// a constant, the tenant slug and the key, which anyone can compute.
fn predictable_msg_id(tenant: &str, key: &str) -> String {
    let ns = uuid::Uuid::from_u128(0x6a1f_3c2e_9b4d_4f0a_8e21_5d7c_0b9a_e413);
    let mut name = tenant.as_bytes().to_vec();
    name.push(0x1f);
    name.extend_from_slice(key.as_bytes());
    uuid::Uuid::new_v5(&ns, &name).to_string()
}

/// A publisher of another tenant, knowing how message ids are made,
/// publishes first with the id of acme's next event: acme's event must
/// still be stored if it gets a 202.
pub(crate) async fn predictable_message_id(h: &H) -> Result<(), String> {
    let key = "predictable_message_id";
    let attacker = failure("attacker-decoy", "checkout", "hostile_probe");
    h.publish(
        ("globex", h.globex.0),
        "checkout",
        Some(predictable_msg_id("acme", key)),
        Bytes::from(attacker.to_string()),
    )
    .await?;
    let body = ev(key);
    let (status, answer) = h.post_event(&body).await;
    if status != 202 {
        return Err(format!("answered {status}, not 202: {answer}"));
    }
    match h.wait_stored(h.acme.0, key, Duration::from_secs(20)).await {
        Some(hash) if hash == body_hash(&body) => Ok(()),
        Some(_) => Err("202, but another body is stored".into()),
        None => Err("202, but the event was never stored".into()),
    }
}

/// The same key, one body over HTTP and another over NATS at once, 30
/// times: exactly one body is stored; HTTP gets 202 only for its own and
/// 409 otherwise; a NATS message whose body lost is dead-lettered as a
/// reused key; afterwards the HTTP body gets 200 or 409 accordingly.
pub(crate) async fn race_http_and_nats(h: &H) -> Result<(), String> {
    let rounds = 30;
    let mut lies = Vec::new();
    for i in 0..rounds {
        let key = format!("race-{i}");
        let y = ev_with(&key, "step", json!("http-body"));
        let x = ev_with(&key, "step", json!("nats-body"));
        let payload = Bytes::from(x.to_string());
        let (http, nats) = tokio::join!(
            h.post_event(&y),
            h.publish(("acme", h.acme.0), "checkout", None, payload.clone())
        );
        let seq = nats?;
        let Some(stored) = h.wait_stored(h.acme.0, &key, Duration::from_secs(20)).await else {
            lies.push(format!("{key}: nothing stored (HTTP answered {})", http.0));
            continue;
        };
        let y_won = stored == body_hash(&y);
        match (http.0, y_won) {
            (202, true) | (409, false) => {}
            (s, true) => lies.push(format!("{key}: the HTTP body is stored but HTTP got {s}")),
            (s, false) => lies.push(format!("{key}: HTTP got {s} but the NATS body is stored")),
        }
        if y_won {
            match h.settle(seq, h.acme.0, &payload, Duration::from_secs(20)).await {
                Ok(Some(reason)) if reason.to_lowercase().contains("key") => {}
                Ok(Some(reason)) => lies.push(format!(
                    "{key}: the losing NATS body was dead-lettered with {reason:?}, not as a reused key"
                )),
                Ok(None) => lies.push(format!("{key}: the NATS body is stored too")),
                Err(e) => lies.push(format!("{key}: the losing NATS body: {e}")),
            }
        }
        let (again, _) = h.post_event(&y).await;
        let want = if y_won { 200 } else { 409 };
        if again != want {
            lies.push(format!(
                "{key}: the HTTP body sent again got {again}, not {want}"
            ));
        }
    }
    if lies.is_empty() {
        Ok(())
    } else {
        let bad: std::collections::BTreeSet<&str> =
            lies.iter().filter_map(|l| l.split(':').next()).collect();
        Err(format!(
            "{} of {rounds} rounds disagree: {}",
            bad.len(),
            lies.join("; ")
        ))
    }
}

/// A key accepted over HTTP, then reused over NATS with another body: the
/// NATS message is dead-lettered as a reused key; HTTP with that body, 409.
pub(crate) async fn nats_reused_key_after_http(h: &H) -> Result<(), String> {
    let key = "nats_reused_key_after_http";
    let y = ev_with(key, "step", json!("first"));
    let x = ev_with(key, "step", json!("second"));
    let (status, answer) = h.post_event(&y).await;
    if status != 202 {
        return Err(format!("the first body answered {status}: {answer}"));
    }
    h.wait_stored(h.acme.0, key, Duration::from_secs(20))
        .await
        .ok_or("the first body was never stored")?;
    let payload = Bytes::from(x.to_string());
    let seq = h
        .publish(("acme", h.acme.0), "checkout", None, payload.clone())
        .await?;
    match h
        .settle(seq, h.acme.0, &payload, Duration::from_secs(20))
        .await?
    {
        Some(reason) if reason.to_lowercase().contains("key") => {}
        Some(reason) => {
            return Err(format!(
                "dead-lettered, but not as a reused key: {reason:?}"
            ));
        }
        None => return Err("the second body replaced the first".into()),
    }
    let (status, _) = h.post_event(&x).await;
    if status != 409 {
        return Err(format!("the second body over HTTP got {status}, not 409"));
    }
    Ok(())
}

/// A key stored from NATS, then sent over HTTP with another body: 409; with
/// the same body: 200.
pub(crate) async fn http_reused_key_after_nats(h: &H) -> Result<(), String> {
    let key = "http_reused_key_after_nats";
    let x = ev_with(key, "step", json!("first"));
    let y = ev_with(key, "step", json!("second"));
    let payload = Bytes::from(x.to_string());
    let seq = h
        .publish(("acme", h.acme.0), "checkout", None, payload.clone())
        .await?;
    if let Some(reason) = h
        .settle(seq, h.acme.0, &payload, Duration::from_secs(20))
        .await?
    {
        return Err(format!("a good event was dead-lettered: {reason}"));
    }
    let (status, _) = h.post_event(&y).await;
    if status != 409 {
        return Err(format!("another body over HTTP got {status}, not 409"));
    }
    let (status, _) = h.post_event(&x).await;
    if status != 200 {
        return Err(format!("the same body over HTTP got {status}, not 200"));
    }
    Ok(())
}
