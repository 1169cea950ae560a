//! Signed HTTP deliveries to tenants' URLs, shared by the scheduler's
//! workflow callbacks and the notifier's channels.
//!
//! [`client`] follows no redirect, times out, and resolves names only to
//! addresses a target may have (every connection's addresses are checked
//! as they are resolved, so a name that resolved to a public address at
//! registration cannot be rebound to an internal one). [`post`] sends one
//! body signed with Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`); [`judge`] says what a try's answer comes to: any
//! 2xx is delivered, anything else (a redirect, no answer, a refused
//! address) is tried again after [`backoff::next_delay`] until the last
//! try, then failed with its reason.

pub mod backoff;

use std::sync::Arc;
use std::time::Duration;

use awfdrs_domain::target::{check_address, parse_target};
use awfdrs_store::TryOutcome;
use chrono::{DateTime, Utc};

/// The longest error text recorded for a try.
const MAX_ERROR: usize = 512;

/// A client that follows no redirect, times out after `timeout`, and
/// resolves names only to addresses a target may have.
///
/// # Errors
/// When the TLS backend cannot be set up.
pub fn client(timeout: Duration, allow_private: bool) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("awfdrs/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(CheckedResolver { allow_private }))
        .build()?)
}

/// Resolves a name and refuses it when any address is not allowed.
struct CheckedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // The connector sets each address's port from the URL.
            let addrs = crate::targets::resolve_checked(&host, 0, allow_private)
                .await
                .map_err(|why| -> Box<dyn std::error::Error + Send + Sync> { why.into() })?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// What one POST came to.
#[derive(Debug)]
pub enum Answer {
    /// The receiver answered, with this status and `Retry-After`.
    Status(u16, Option<Duration>),
    /// No answer: why.
    Failed(String),
}

/// One signed delivery to make.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// Where: a target URL, checked again here.
    pub url: &'a str,
    /// The Standard Webhooks secret (`whsec_...`).
    pub secret: &'a str,
    /// The `webhook-id`, the same on every try.
    pub msg_id: &'a str,
    /// The exact JSON body.
    pub body: &'a str,
    /// Whether private addresses are allowed.
    pub allow_private: bool,
}

/// POSTs `d` once, signed. `what` names the URL in reasons ("the callback
/// URL").
pub async fn post(client: &reqwest::Client, d: Signed<'_>, what: &str) -> Answer {
    // The URL was checked when registered; its literal address (which no
    // resolver sees) is checked again here, names by the client's resolver.
    let target = match parse_target(d.url) {
        Ok(t) => t,
        Err(why) => return Answer::Failed(format!("{what} {why}")),
    };
    if let Some(ip) = target.ip
        && let Err(why) = check_address(ip, d.allow_private)
    {
        return Answer::Failed(format!("{what} {why}"));
    }
    let ts = Utc::now().timestamp();
    let signature = match awfdrs_domain::webhook::sign(d.secret, d.msg_id, ts, d.body.as_bytes()) {
        Ok(s) => s,
        Err(why) => return Answer::Failed(why.to_owned()),
    };
    let sent = client
        .post(target.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", d.msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(d.body.to_owned())
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| backoff::retry_after(v, Utc::now()));
            Answer::Status(resp.status().as_u16(), after)
        }
        Err(e) => Answer::Failed(describe(&e)),
    }
}

/// A client error with its causes, one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What a try came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// The answer's status, when there was one.
    pub status_code: Option<u16>,
    /// Why it did not deliver, when it did not.
    pub error: Option<String>,
    pub outcome: TryOutcome,
}

/// The try's outcome: delivered on a 2xx; otherwise tried again after the
/// backoff, unless it was the last try or there is nothing to deliver to
/// (`removed`).
#[must_use]
pub fn judge(answer: &Answer, tries: u32, max_tries: u32, removed: bool, msg_id: &str) -> Judged {
    let (status_code, error, retry_after) = match answer {
        Answer::Status(code, _) if (200..300).contains(code) => {
            return Judged {
                status_code: Some(*code),
                error: None,
                outcome: TryOutcome::Delivered,
            };
        }
        Answer::Status(code, after) => (
            Some(*code),
            Some(if (300..400).contains(code) {
                format!("HTTP {code}: redirects are not followed")
            } else {
                format!("HTTP {code}")
            }),
            *after,
        ),
        Answer::Failed(why) => (None, Some(why.clone()), None),
    };
    let outcome = if removed || tries >= max_tries {
        TryOutcome::Failed
    } else {
        let delay = backoff::next_delay(tries, msg_id, retry_after);
        TryOutcome::Retried(later(delay))
    };
    let error = error.map(|e| {
        let e = if outcome == TryOutcome::Failed && !removed {
            format!(
                "{e} (gave up after {tries} {})",
                if tries == 1 { "try" } else { "tries" }
            )
        } else {
            e
        };
        cut(&e)
    });
    Judged {
        status_code,
        error,
        outcome,
    }
}

fn later(delay: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_ERROR {
        return s.to_owned();
    }
    let mut end = MAX_ERROR;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2xx_is_delivered_whatever_the_try() {
        for code in [200, 202, 204, 299] {
            let t = judge(&Answer::Status(code, None), 8, 8, false, "m");
            assert_eq!(t.outcome, TryOutcome::Delivered, "{code}");
            assert_eq!(t.error, None);
        }
    }

    #[test]
    fn other_answers_are_retried_until_the_last_try() {
        for answer in [
            Answer::Status(500, None),
            Answer::Status(302, None),
            Answer::Status(429, Some(Duration::from_secs(2))),
            Answer::Failed("could not connect".into()),
        ] {
            let t = judge(&answer, 1, 3, false, "m");
            assert!(matches!(t.outcome, TryOutcome::Retried(_)), "{answer:?}");
            let last = judge(&answer, 3, 3, false, "m");
            assert_eq!(last.outcome, TryOutcome::Failed, "{answer:?}");
            assert!(last.error.unwrap().contains("gave up after 3 tries"));
        }
        let redirect = judge(&Answer::Status(301, None), 1, 3, false, "m");
        assert!(
            redirect
                .error
                .unwrap()
                .contains("redirects are not followed")
        );
    }

    #[test]
    fn retry_after_sets_the_next_try_no_sooner() {
        let before = Utc::now();
        let t = judge(
            &Answer::Status(503, Some(Duration::from_secs(30))),
            1,
            8,
            false,
            "m",
        );
        let TryOutcome::Retried(next) = t.outcome else {
            panic!("{t:?}");
        };
        assert!(next >= before + chrono::Duration::seconds(30));
    }

    #[test]
    fn a_removed_target_fails_at_once() {
        let t = judge(&Answer::Failed("removed".into()), 1, 8, true, "m");
        assert_eq!(t.outcome, TryOutcome::Failed);
    }
}
