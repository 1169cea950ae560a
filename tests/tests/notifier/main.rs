//! The notifier end to end: an escalated incident becomes one notification
//! per channel of its tenant whose `min_severity` it meets, in the body
//! that channel's kind takes (webhook, Slack, PagerDuty), signed with
//! Standard Webhooks (checked here by an independent implementation, the
//! `standardwebhooks` crate) and delivered once, with the same
//! `webhook-id` on every try; channels are checked hard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod channels;
mod delivery;
mod groups;
mod kills;
mod levels;
mod limits;
mod quiet;
mod support;
mod tries;
