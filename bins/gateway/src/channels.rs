//! Notification channels: where a tenant's escalated incidents are sent
//! (`POST /api/v1/channels`, `GET` the list, `DELETE /api/v1/channels/{id}`).
//! A channel is a generic `webhook`, a `slack` incoming webhook or
//! `pagerduty` (Events API v2, with its `routing_key`); `min_severity`
//! keeps it quiet below that severity; `level` (1 to 10) makes escalation
//! levels of a tenant's channels. The answer to a POST carries the
//! channel's Standard Webhooks signing secret, once. URLs are checked as
//! callback URLs are: `http` or `https`, no credentials, no control
//! characters, at most 2 KiB, and no loopback, private or link-local
//! address unless `notifications.allow_private_targets` is set.

use awfdrs_runtime::targets::check_target;
use awfdrs_store::{Channel, NewChannel};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ops::store_problem;
use crate::{AppState, Problem, auth};

/// The longest channel name, in bytes.
const MAX_NAME: usize = 100;
/// The longest PagerDuty routing key, in bytes.
const MAX_ROUTING_KEY: usize = 128;

/// A channel's kind.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ChannelKind {
    /// A generic JSON webhook.
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// PagerDuty's Events API v2.
    Pagerduty,
}

/// A severity, as a channel's threshold.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MinSeverity {
    Low,
    Medium,
    High,
    Critical,
}

/// Body of `POST /api/v1/channels`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelBody {
    /// A name for people, at most 100 bytes, no control characters.
    #[schema(max_length = 100)]
    name: String,
    kind: ChannelKind,
    /// Where notifications are POSTed: an `http` or `https` URL, at most
    /// 2048 bytes.
    #[schema(max_length = 2048)]
    url: String,
    /// The least severity this channel is told of (default `low`: all).
    min_severity: Option<MinSeverity>,
    /// The PagerDuty integration key: required for `pagerduty`, refused
    /// for the other kinds.
    #[schema(max_length = 128)]
    routing_key: Option<String>,
    /// Its escalation level, 1 (told first, the default) to 10: a level is
    /// told when nobody acknowledged the incident in time after the one
    /// before.
    #[schema(minimum = 1, maximum = 10)]
    level: Option<i64>,
    /// How long, in milliseconds, this channel's level waits for an
    /// acknowledgement before the next level is told (1 s to 7 days; the
    /// level's is the least of its channels'). Absent:
    /// `notifications.escalate_after_ms`.
    #[schema(minimum = 1000, maximum = 604_800_000)]
    escalate_after_ms: Option<i64>,
    /// The most deliveries per minute this channel is sent (1 to 6000);
    /// more wait their turn. Absent: `notifications.channel_rate_per_minute`.
    #[schema(minimum = 1, maximum = 6000)]
    rate_per_minute: Option<i64>,
}

/// The longest a level may wait for an acknowledgement, in milliseconds.
const MAX_ESCALATE_AFTER_MS: i64 = 7 * 24 * 3600 * 1000;
/// The highest per-channel rate, per minute.
const MAX_RATE_PER_MINUTE: i64 = 6000;

/// A channel, as listed (without its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ChannelView {
    id: Uuid,
    name: String,
    /// `webhook`, `slack` or `pagerduty`.
    kind: String,
    url: String,
    /// `low`, `medium`, `high` or `critical`.
    min_severity: String,
    routing_key: Option<String>,
    /// Its escalation level, 1 (told first) to 10.
    level: i32,
    /// Its level's wait for an acknowledgement, if it sets one.
    escalate_after_ms: Option<i64>,
    /// Its delivery rate limit, if it sets one.
    rate_per_minute: Option<i32>,
    /// Its place in the tenant's order.
    position: i64,
    created_at: DateTime<Utc>,
}

impl From<Channel> for ChannelView {
    fn from(c: Channel) -> Self {
        Self {
            id: c.id,
            name: c.name,
            kind: c.kind,
            url: c.url,
            min_severity: c.min_severity,
            routing_key: c.routing_key,
            level: c.level,
            escalate_after_ms: c.escalate_after_ms,
            rate_per_minute: c.rate_per_minute,
            position: c.position,
            created_at: c.created_at,
        }
    }
}

/// A new channel with its signing secret (shown only here).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ChannelAdded {
    #[serde(flatten)]
    channel: ChannelView,
    /// The Standard Webhooks signing secret (`whsec_...`) every
    /// notification to this channel is signed with. Shown once.
    secret: String,
}

/// The tenant's channels, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ChannelList {
    items: Vec<ChannelView>,
}

/// Checks a short text field: not empty, at most `max` bytes, no control
/// characters.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), Problem> {
    if value.trim().is_empty() {
        return Err(Problem::invalid_field(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(Problem::invalid_field(
            field,
            format!("must be at most {max} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Problem::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn kind_str(k: ChannelKind) -> &'static str {
    match k {
        ChannelKind::Webhook => "webhook",
        ChannelKind::Slack => "slack",
        ChannelKind::Pagerduty => "pagerduty",
    }
}

fn severity_str(s: MinSeverity) -> &'static str {
    match s {
        MinSeverity::Low => "low",
        MinSeverity::Medium => "medium",
        MinSeverity::High => "high",
        MinSeverity::Critical => "critical",
    }
}

/// Adds a notification channel and answers its signing secret.
#[utoipa::path(
    post, path = "/api/v1/channels", tag = "remediation",
    request_body(content = ChannelBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The channel, with its signing secret (shown once)", body = ChannelAdded),
        (status = 400, description = "A body that is not JSON", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 403, description = "An admin key: a channel is a tenant's", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 422, description = "A bad name, kind, severity, routing key or URL (scheme, credentials, control characters, length, or an address that is not allowed)", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn add_channel(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<axum::Json<ChannelBody>, JsonRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let tenant = caller.tenant_only("a channel")?;
        let axum::Json(body) = body.map_err(|e| match e {
            JsonRejection::JsonDataError(e) => Problem::invalid_field("body", e.body_text()),
            e => Problem::bad_request(e.body_text()),
        })?;
        check_text("name", &body.name, MAX_NAME)?;
        match (body.kind, body.routing_key.as_deref()) {
            (ChannelKind::Pagerduty, None) => {
                return Err(Problem::invalid_field(
                    "routing_key",
                    "is required for a pagerduty channel",
                ));
            }
            (ChannelKind::Pagerduty, Some(key)) => check_text("routing_key", key, MAX_ROUTING_KEY)?,
            (_, Some(_)) => {
                return Err(Problem::invalid_field(
                    "routing_key",
                    "is only for a pagerduty channel",
                ));
            }
            (_, None) => {}
        }
        let level = match body.level {
            None => 1,
            Some(l @ 1..=10) => i32::try_from(l).unwrap_or(1),
            Some(_) => return Err(Problem::invalid_field("level", "must be between 1 and 10")),
        };
        let escalate_after_ms = match body.escalate_after_ms {
            Some(ms) if !(1000..=MAX_ESCALATE_AFTER_MS).contains(&ms) => {
                return Err(Problem::invalid_field(
                    "escalate_after_ms",
                    format!("must be between 1000 and {MAX_ESCALATE_AFTER_MS}"),
                ));
            }
            ms => ms,
        };
        let rate_per_minute = match body.rate_per_minute {
            None => None,
            Some(r @ 1..=MAX_RATE_PER_MINUTE) => i32::try_from(r).ok(),
            Some(_) => {
                return Err(Problem::invalid_field(
                    "rate_per_minute",
                    format!("must be between 1 and {MAX_RATE_PER_MINUTE}"),
                ));
            }
        };
        let allow_private = state.ctx().config.notifications.allow_private_targets;
        let target = check_target(&body.url, allow_private)
            .await
            .map_err(|why| Problem::invalid_field("url", why))?;
        let secret = awfdrs_domain::webhook::new_secret();
        let added = state
            .ctx()
            .store
            .add_channel(&NewChannel {
                tenant_id: tenant,
                name: &body.name,
                kind: kind_str(body.kind),
                url: target.url.as_str(),
                secret: &secret,
                min_severity: severity_str(body.min_severity.unwrap_or(MinSeverity::Low)),
                routing_key: body.routing_key.as_deref(),
                level,
                escalate_after_ms,
                rate_per_minute,
            })
            .await
            .map_err(store_problem)?;
        Ok::<_, Problem>((
            StatusCode::CREATED,
            axum::Json(ChannelAdded {
                channel: added.into(),
                secret,
            }),
        ))
    }
    .await;
    result.into_response()
}

/// The tenant's notification channels, in order, without their secrets.
#[utoipa::path(
    get, path = "/api/v1/channels", tag = "remediation",
    responses(
        (status = 200, description = "The channels", body = ChannelList),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 403, description = "An admin key: a channel is a tenant's", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_channels(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let tenant = caller.tenant_only("a channel")?;
        let channels = state
            .ctx()
            .store
            .channels(tenant)
            .await
            .map_err(store_problem)?;
        Ok::<_, Problem>(axum::Json(ChannelList {
            items: channels.into_iter().map(ChannelView::from).collect(),
        }))
    }
    .await;
    result.into_response()
}

/// Removes a notification channel; its notifications not yet delivered
/// are given up.
#[utoipa::path(
    delete, path = "/api/v1/channels/{id}", tag = "remediation",
    params(("id" = Uuid, Path, description = "The channel's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "An id that is not a UUID", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 401, description = "No key or a bad key", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 403, description = "An admin key: a channel is a tenant's", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 404, description = "No such channel for the caller", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
        (status = 503, description = "The database cannot be reached (with `Retry-After`)", content_type = "application/problem+json", body = crate::openapi::schema::Problem),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn remove_channel(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<Uuid>, PathRejection>,
) -> Response {
    let result = async {
        let caller = auth::caller(&state, &headers).await?;
        let tenant = caller.tenant_only("a channel")?;
        let Path(id) = id.map_err(|e| Problem::bad_request(e.body_text()))?;
        let removed = state
            .ctx()
            .store
            .remove_channel(tenant, id)
            .await
            .map_err(store_problem)?;
        if removed {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(Problem::not_found(format!("no channel {id}")))
        }
    }
    .await;
    result.into_response()
}
