-- Notifications: a tenant's channels (webhook, Slack, PagerDuty) are told
-- of escalated incidents. Each notification is one durable row, identified
-- by (incident, channel, level, type), so redeliveries and restarts make
-- none twice; the notifier delivers it, signed with Standard Webhooks with
-- the channel's secret, with backoff, and records every try.

-- A tenant's channel. `secret` is the Standard Webhooks signing secret
-- (`whsec_...`); only libs/store/src/channels.rs reads or writes it.
-- `position` orders the tenant's channels and `level` makes escalation
-- levels of them: an escalation goes to the lowest level first, and to the
-- next one when nobody acknowledged it in time. A removed channel keeps
-- its row (`deleted_at`) so its notifications still name it.
CREATE TABLE channels (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    name          text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('webhook', 'slack', 'pagerduty')),
    url           text NOT NULL,
    secret        text NOT NULL,
    min_severity  text NOT NULL DEFAULT 'low'
                      CHECK (min_severity IN ('low', 'medium', 'high', 'critical')),
    routing_key   text,
    level         integer NOT NULL DEFAULT 1 CHECK (level BETWEEN 1 AND 10),
    position      bigserial NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    CHECK (kind <> 'pagerduty' OR routing_key IS NOT NULL)
);
CREATE INDEX channels_tenant ON channels (tenant_id, position) WHERE deleted_at IS NULL;

-- One notification of an incident to a channel at a level. `id` is a
-- UUIDv5 of (incident, channel, level, type); `msg_id` is its `webhook-id`,
-- the same on every try. `body` is the exact JSON POSTed.
CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    incident_id      uuid NOT NULL REFERENCES incidents (id),
    channel_id       uuid NOT NULL REFERENCES channels (id),
    level            integer NOT NULL,
    type             text NOT NULL CHECK (type IN ('incident.escalated', 'incident.resolved')),
    status           text NOT NULL DEFAULT 'PENDING'
                         CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    tries            integer NOT NULL DEFAULT 0,
    next_try_at      timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    msg_id           text NOT NULL,
    body             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (incident_id, channel_id, level, type)
);
CREATE INDEX notifications_due ON notifications (next_try_at) WHERE status = 'PENDING';
CREATE INDEX notifications_incident ON notifications (tenant_id, incident_id);

-- Every try of a notification: when it started, what came back, how long
-- it took, and what followed (delivered, retried, or failed).
CREATE TABLE notification_tries (
    id               bigserial PRIMARY KEY,
    notification_id  uuid NOT NULL REFERENCES notifications (id),
    try              integer NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL DEFAULT now(),
    status_code      integer,
    latency_ms       integer,
    error            text,
    outcome          text NOT NULL CHECK (outcome IN ('delivered', 'retried', 'failed')),
    next_try_at      timestamptz,
    UNIQUE (notification_id, try)
);

-- An operator acknowledges an escalated incident: no further level is
-- notified of it.
ALTER TABLE incidents ADD COLUMN acknowledged_at timestamptz;
ALTER TABLE incidents ADD COLUMN acknowledged_by text;
