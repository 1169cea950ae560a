//! Keys and signatures: a 401 that gives nothing away, keys rotated and
//! revoked with the CLI, and what one tenant's key may see.

use std::time::{Duration, Instant};

use awfdrs_tests::{awfdrs_bin, failure};
use serde_json::json;

use crate::case::ev;
use crate::harness::{H, record};
use crate::run::is_problem;

/// The 401 for a signed request says the same whether the tenant exists,
/// has a webhook secret or not.
pub(crate) async fn webhook_401_uniform(h: &H) -> Result<(), String> {
    let body = ev("webhook_401_uniform").to_string();
    let now = chrono::Utc::now().timestamp();
    let wrong = awfdrs_domain::webhook::new_secret();
    let sig = awfdrs_domain::webhook::sign(&wrong, "msg_1", now, body.as_bytes()).unwrap();
    let mut answers = Vec::new();
    for tenant in ["signed", "bare", "nobody"] {
        let r = h
            .http
            .post(format!("{}/api/v1/events", h.base))
            .header("content-type", "application/json")
            .header("x-awfdrs-tenant", tenant)
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", sig.clone())
            .body(body.clone());
        let (status, ct, answer) = h.send(r).await;
        if status != 401 {
            return Err(format!("tenant {tenant}: {status}, not 401"));
        }
        is_problem(&ct, &answer, status)?;
        answers.push((tenant, answer["detail"].clone(), answer["title"].clone()));
    }
    if answers
        .iter()
        .all(|a| a.1 == answers[0].1 && a.2 == answers[0].2)
    {
        Ok(())
    } else {
        Err(format!("the 401s differ by tenant: {answers:?}"))
    }
}

/// `awfdrs tenants rotate-key` prints the new key alone; the old key stops
/// working within seconds, the new one works; `revoke-key` stops it too.
pub(crate) async fn rotate_and_revoke(h: &H) -> Result<(), String> {
    let old = awfdrs_domain::new_api_key();
    let t = h
        .store
        .create_tenant("rot", &old)
        .await
        .map_err(|e| e.to_string())?;
    let send = |key: String, n: usize| async move {
        let body = ev(&format!("rotate-{n}"));
        let r = h
            .http
            .post(format!("{}/api/v1/events", h.base))
            .bearer_auth(key)
            .json(&body);
        let (status, _, _) = h.send(r).await;
        record(h, &[t.id], &body, status);
        status
    };
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    if send(old.clone(), next()).await != 202 {
        return Err("the first key does not work".into());
    }
    let cli = |args: &'static [&'static str]| async move {
        tokio::process::Command::new(awfdrs_bin())
            .args(args)
            .env_clear()
            .envs(h.world.env(&[]))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .await
            .expect("run awfdrs")
    };
    let out = cli(&["tenants", "rotate-key", "rot"]).await;
    if !out.status.success() {
        return Err(format!(
            "awfdrs tenants rotate-key failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let new = stdout.trim().to_owned();
    if stdout.lines().count() != 1 || !new.starts_with("awf_") {
        return Err(format!("rotate-key printed {stdout:?}, not the key alone"));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while send(old.clone(), next()).await != 401 {
        if Instant::now() >= deadline {
            return Err("the rotated-out key still works after 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if send(new.clone(), next()).await != 202 {
        return Err("the new key does not work".into());
    }
    let out = cli(&["tenants", "revoke-key", "rot"]).await;
    if !out.status.success() {
        return Err(format!(
            "awfdrs tenants revoke-key failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while send(new.clone(), next()).await != 401 {
        if Instant::now() >= deadline {
            return Err("the revoked key still works after 5 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// A tenant's key lists only the breakers of vendors it sent events for;
/// an admin key, all of them.
pub(crate) async fn breakers_scoped(h: &H) -> Result<(), String> {
    let mut body = failure("breakers-globex", "checkout", "hostile_probe");
    body["vendor"] = json!("paypal");
    let r = h
        .http
        .post(format!("{}/api/v1/events", h.base))
        .bearer_auth(&h.globex.1)
        .json(&body);
    let (status, _, _) = h.send(r).await;
    record(h, &[h.globex.0], &body, status);
    if status != 202 {
        return Err(format!("globex's event answered {status}"));
    }
    let vendors = |key: String| async move {
        let r = h
            .http
            .get(format!("{}/api/v1/breakers", h.base))
            .bearer_auth(key);
        let (status, _, answer) = h.send(r).await;
        let names: Vec<String> = answer["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["vendor"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        (status, names)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, names) = vendors(h.admin.clone()).await;
        if status == 200 && names.iter().any(|v| v == "paypal") {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the admin key never saw paypal: {status} {names:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, names) = vendors(h.acme.1.clone()).await;
    if status != 200 {
        return Err(format!("acme's breakers answered {status}"));
    }
    let foreign: Vec<&String> = names.iter().filter(|v| *v != "stripe").collect();
    if foreign.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "acme's key lists vendors acme never sent events for: {foreign:?}"
        ))
    }
}
