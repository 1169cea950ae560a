//! Running one case of the table and judging its outcome.

use std::time::Duration;

use serde_json::Value;

use crate::case::{Body, Case, Expect, Input, Item};
use crate::harness::{H, record};
use crate::raw::{raw_answer, raw_closed};

pub(crate) fn is_problem(ct: &str, body: &Value, status: u16) -> Result<(), String> {
    if !ct.starts_with("application/problem+json") {
        return Err(format!(
            "{status} with content type {ct:?}, not application/problem+json: {body}"
        ));
    }
    if body["status"] != status {
        return Err(format!("{status} whose problem body says {body}"));
    }
    Ok(())
}

fn names_field(problem: &Value, field: &str) -> Result<(), String> {
    let named = problem["errors"].as_array().is_some_and(|errs| {
        errs.iter()
            .filter_map(|e| e["field"].as_str())
            .any(|f| f.starts_with(field))
    });
    if named {
        Ok(())
    } else {
        Err(format!("422 does not name {field}: {problem}"))
    }
}

pub(crate) async fn run_case(h: &H, c: &Case) -> Result<(), String> {
    match (&c.input, &c.expect) {
        (Input::Post(path, auth, body), expect) => {
            let times = match expect {
                Expect::Invalid(_) => 2,
                Expect::Status(s) if *s >= 400 => 2,
                _ => 1,
            };
            for attempt in 1..=times {
                let (tenants, req) = h.request(reqwest::Method::POST, path, *auth, body);
                let (status, ct, answer) = h.send(req).await;
                let Body::Json(sent) = body else {
                    unreachable!()
                };
                if let Some(items) = sent["events"].as_array() {
                    let results = answer["results"].as_array();
                    for (i, item) in items.iter().enumerate() {
                        let s = results
                            .and_then(|r| r.get(i))
                            .and_then(|r| r["status"].as_u64())
                            .map_or(status, |s| s as u16);
                        record(h, &tenants, item, s);
                    }
                } else {
                    record(h, &tenants, sent, status);
                }
                let again = if attempt > 1 { " (sent again)" } else { "" };
                check_answer(expect, status, &ct, &answer).map_err(|e| format!("{e}{again}"))?;
            }
            Ok(())
        }
        (Input::Get(path, auth), expect) => {
            let (_, req) = h.request(reqwest::Method::GET, path, *auth, &Body::None);
            let (status, ct, answer) = h.send(req).await;
            check_answer(expect, status, &ct, &answer)
        }
        (Input::Nats(payload), expect) => {
            let seq = h
                .publish(("acme", h.acme.0), "checkout", None, payload.clone())
                .await?;
            let fate = h
                .settle(seq, h.acme.0, payload, Duration::from_secs(30))
                .await?;
            match (expect, fate) {
                (Expect::Settled, _) => Ok(()),
                (Expect::Dead(want), Some(reason)) => {
                    if reason.to_lowercase().contains(&want.to_lowercase()) {
                        Ok(())
                    } else {
                        Err(format!(
                            "dead-lettered, but the reason does not say {want:?}: {reason:?}"
                        ))
                    }
                }
                (Expect::Dead(_), None) => Err("stored, not dead-lettered".into()),
                (e, _) => Err(format!("{e:?} is not an outcome of a NATS message")),
            }
        }
        (Input::Raw(bytes), Expect::Closed) => raw_closed(h, bytes).await,
        (Input::Raw(bytes), Expect::Answer(want)) => {
            let (status, ct, body) = raw_answer(h, bytes, Duration::from_secs(10)).await?;
            if status != *want {
                return Err(format!("answered {status}, not {want}: {body}"));
            }
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
            is_problem(&ct, &body, status)
        }
        (Input::Scenario(f), _) => f(h).await,
        (_, e) => Err(format!("{e:?} does not apply to this input")),
    }
}

fn check_answer(expect: &Expect, status: u16, ct: &str, answer: &Value) -> Result<(), String> {
    if status == 0 {
        return Err("no answer (the connection was dropped)".into());
    }
    match expect {
        Expect::Status(want) => {
            if status != *want {
                return Err(format!("answered {status}, not {want}: {answer}"));
            }
            if status >= 400 {
                is_problem(ct, answer, status)?;
            }
            Ok(())
        }
        Expect::ClientError => {
            if status != 400 && status != 422 {
                return Err(format!("answered {status}, not 400 or 422: {answer}"));
            }
            is_problem(ct, answer, status)
        }
        Expect::Invalid(field) => {
            if status != 422 {
                return Err(format!("answered {status}, not 422: {answer}"));
            }
            is_problem(ct, answer, status)?;
            names_field(answer, field)
        }
        Expect::Batch(items) => {
            if status != 200 {
                return Err(format!("the batch answered {status}, not 200: {answer}"));
            }
            let results = answer["results"].as_array().cloned().unwrap_or_default();
            let got: Vec<u64> = results
                .iter()
                .map(|r| r["status"].as_u64().unwrap_or(0))
                .collect();
            let want: Vec<u64> = items
                .iter()
                .map(|i| match i {
                    Item::S(s) => u64::from(*s),
                    Item::Invalid(_) => 422,
                })
                .collect();
            if got != want {
                return Err(format!("item statuses {got:?}, not {want:?}"));
            }
            for (r, i) in results.iter().zip(items) {
                if let Item::Invalid(field) = i {
                    names_field(&r["error"], field)?;
                }
            }
            Ok(())
        }
        e => Err(format!("{e:?} is not an outcome of an HTTP request")),
    }
}
