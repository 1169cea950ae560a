//! What the demo's remediation stories share: their tenants, the HTTP
//! calls they make, how they wait for and print an incident, and the
//! workflow engine the demo plays.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use awfdrs_bus::{Bus, Namespace};
use awfdrs_domain::RetryCommandV1;
use awfdrs_store::Store;
use chrono::Utc;
use futures::StreamExt;
use serde_json::{Value, json};

/// What the stories share.
pub(super) struct Stage<'a> {
    pub base: &'a str,
    pub http: reqwest::Client,
    pub store: &'a Store,
    pub bus: &'a Bus,
    pub ns: &'a Namespace,
    /// The demo run's prefix for tenant slugs.
    pub prefix: &'a str,
    /// Successes that resolve an incident (`detector.auto_resolve_successes`).
    pub successes: u32,
    /// The rules the demo reads (those `awfdrs up` runs with).
    pub rules: &'a awfdrs_rules::Rules,
    pub settle: Duration,
}

/// A story's tenant.
pub(super) struct Tenant {
    pub slug: String,
    pub key: String,
}

impl Stage<'_> {
    pub(super) async fn tenant(&self, name: &str, keys: &Keys) -> anyhow::Result<Tenant> {
        let slug = format!("{}-{name}", self.prefix);
        let key = awfdrs_domain::new_api_key();
        self.store.create_tenant(&slug, &key).await?;
        keys.lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push((slug.clone(), key.clone()));
        Ok(Tenant { slug, key })
    }

    pub(super) async fn send(
        &self,
        t: &Tenant,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&t.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .with_context(|| format!("no answer from {}", self.base))?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// `t`'s incident of `workflow` as the API shows it now, if it has one.
    async fn look(&self, t: &Tenant, workflow: &str) -> Option<Value> {
        let (_, list) = self
            .send(t, reqwest::Method::GET, "/api/v1/incidents", None)
            .await
            .ok()?;
        let items = list["items"].as_array()?;
        let id = items.iter().find(|i| i["workflow_id"] == workflow)?["id"].as_str()?;
        let path = format!("/api/v1/incidents/{id}");
        match self.send(t, reqwest::Method::GET, &path, None).await {
            Ok((200, detail)) => Some(detail),
            _ => None,
        }
    }

    /// Waits until `t`'s incident of `workflow` satisfies `done`; returns it.
    pub(super) async fn incident(
        &self,
        t: &Tenant,
        workflow: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + self.settle;
        while Instant::now() < deadline {
            if let Some(detail) = self.look(t, workflow).await
                && done(&detail)
            {
                return Some(detail);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        None
    }
}

/// Slugs and keys of the demo's tenants, for its workflow engine.
pub(super) type Keys = Arc<Mutex<Vec<(String, String)>>>;

pub(super) fn event(
    key: &str,
    workflow: &str,
    step: &str,
    vendor: &str,
    run: &str,
    code: Option<&str>,
) -> Value {
    let mut e = json!({
        "idempotency_key": key,
        "workflow_id": workflow,
        "event_type": if code.is_some() { "step_failed" } else { "step_succeeded" },
        "occurred_at": Utc::now().to_rfc3339(),
        "workflow_run_id": run,
        "step": step,
        "vendor": vendor,
    });
    if let Some(code) = code {
        e["error"] = json!({"code": code, "message": format!("{vendor} failed: {code}")});
    }
    e
}

/// Whether the incident has an action of `kind` with `status`.
pub(super) fn has(detail: &Value, kind: &str, status: &str) -> bool {
    detail["actions"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["kind"] == kind && x["status"] == status))
}

/// Prints the incident's latest decision and its actions.
pub(super) fn show(title: &str, detail: &Value) {
    println!("\n{title}");
    let d = detail["decisions"]
        .as_array()
        .and_then(|d| d.last())
        .cloned()
        .unwrap_or_default();
    println!(
        "  incident {} {} ({}), decided: {} - {}",
        detail["id"].as_str().unwrap_or("?"),
        detail["status"].as_str().unwrap_or("?"),
        detail["error_code"].as_str().unwrap_or("?"),
        d["recommended_action"]["action"].as_str().unwrap_or("?"),
        d["recommended_action"]["reason"].as_str().unwrap_or("?"),
    );
    for a in detail["actions"].as_array().into_iter().flatten() {
        let shadow = if a["shadow"] == true { " (shadow)" } else { "" };
        println!(
            "  {:<8} {:<10} attempt {}{shadow}: {}",
            a["kind"].as_str().unwrap_or("?"),
            a["status"].as_str().unwrap_or("?"),
            a["attempt"],
            a["reason"].as_str().unwrap_or("?")
        );
    }
}

/// The demo's workflow engine: answers every retry command of the demo's
/// tenants with the retried run's success and as many more as resolve the
/// incident; `fired` collects the tenants that got a command.
pub(super) async fn engine(
    stage: &Stage<'_>,
    keys: Keys,
    fired: Arc<Mutex<HashSet<String>>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut commands = stage
        .bus
        .subscribe(format!("{}.commands.>", stage.ns.as_str()))
        .await?;
    let (http, base, successes) = (stage.http.clone(), stage.base.to_owned(), stage.successes);
    Ok(tokio::spawn(async move {
        while let Some(m) = commands.next().await {
            let Ok(c) = serde_json::from_slice::<RetryCommandV1>(&m.payload) else {
                continue;
            };
            let key = keys.lock().ok().and_then(|k| {
                k.iter()
                    .find(|(s, _)| *s == c.tenant)
                    .map(|(_, key)| key.clone())
            });
            let Some(key) = key else { continue };
            if let Ok(mut f) = fired.lock() {
                f.insert(c.tenant.clone());
            }
            let run = c.workflow_run_id.clone().unwrap_or_default();
            let (step, vendor) = (
                c.step.clone().unwrap_or_default(),
                c.vendor.clone().unwrap_or_default(),
            );
            for i in 0..successes {
                let e = event(
                    &format!("ok-{}-{i}", c.action_id),
                    &c.workflow_id,
                    &step,
                    &vendor,
                    &run,
                    None,
                );
                let _ = http
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(&key)
                    .json(&e)
                    .send()
                    .await;
            }
        }
    }))
}
