-- Tenants, events, incidents and the outbox: the system of record of ingestion.

CREATE TABLE tenants (
    id              uuid PRIMARY KEY,
    slug            text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    -- SHA-256 of the API key; the key itself is never stored.
    api_key_hash    bytea NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The gateway's idempotency record: a key accepted once stays a duplicate for
-- ever, long past the broker's duplicate window.
CREATE TABLE ingest_keys (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    idempotency_key text NOT NULL,
    event_id        uuid NOT NULL,
    body_hash       bytea NOT NULL,
    correlation_id  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);

-- Append-only: every event as accepted, once per tenant and idempotency key.
CREATE TABLE events (
    id              uuid NOT NULL,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    idempotency_key text NOT NULL,
    workflow_id     text NOT NULL,
    event_type      text NOT NULL CHECK (event_type IN
                        ('step_started', 'step_succeeded', 'step_failed',
                         'workflow_succeeded', 'workflow_failed')),
    occurred_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    workflow_run_id text,
    step            text,
    vendor          text,
    error_code      text,
    error_message   text,
    http_status     integer,
    retryable       boolean,
    attempt         integer,
    correlation_id  text NOT NULL,
    -- The failure signature, for failures: links the event to its incidents.
    signature       text,
    body_hash       bytea NOT NULL,
    source          text NOT NULL CHECK (source IN ('http', 'nats')),
    metadata        jsonb,
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE UNIQUE INDEX events_id ON events (id);
CREATE INDEX events_tenant_workflow ON events (tenant_id, workflow_id);
CREATE INDEX events_tenant_occurred ON events (tenant_id, occurred_at);
CREATE INDEX events_tenant_signature ON events (tenant_id, signature, occurred_at)
    WHERE signature IS NOT NULL;

CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

CREATE TABLE incidents (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    signature       text NOT NULL,
    workflow_id     text NOT NULL,
    error_code      text NOT NULL,
    vendor          text,
    step            text,
    status          text NOT NULL CHECK (status IN ('NEW', 'ANALYZING', 'ACTIONED', 'RESOLVED')),
    event_count     bigint NOT NULL CHECK (event_count >= 0),
    -- Successes of the same step since the last failure (auto-resolve).
    success_streak  integer NOT NULL DEFAULT 0,
    first_seen      timestamptz NOT NULL,
    last_seen       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    analyzing_at    timestamptz,
    actioned_at     timestamptz,
    resolved_at     timestamptz,
    resolved_by     text,
    reopened_at     timestamptz,
    reopen_count    integer NOT NULL DEFAULT 0,
    CHECK ((status = 'RESOLVED') = (resolved_at IS NOT NULL))
);
-- The database, not a worker's memory, keeps one open incident per signature.
CREATE UNIQUE INDEX incidents_one_open_per_signature
    ON incidents (tenant_id, signature) WHERE status <> 'RESOLVED';
CREATE INDEX incidents_tenant_last_seen ON incidents (tenant_id, last_seen DESC, id DESC);
CREATE INDEX incidents_tenant_workflow_open ON incidents (tenant_id, workflow_id)
    WHERE status <> 'RESOLVED';
CREATE INDEX incidents_tenant_signature_resolved ON incidents (tenant_id, signature, resolved_at DESC)
    WHERE status = 'RESOLVED';

-- Every status change, timestamped and attributed: the incident's timeline.
CREATE TABLE incident_transitions (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    incident_id     uuid NOT NULL REFERENCES incidents (id),
    from_status     text,
    to_status       text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    reason          text NOT NULL
);
CREATE INDEX incident_transitions_incident ON incident_transitions (tenant_id, incident_id, id);

-- Messages to publish once their transaction has committed. A relay publishes
-- them with their deterministic message id and marks them; a crash between
-- commit and publish leaves the row for the sweeper.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    subject         text NOT NULL,
    msg_id          text NOT NULL UNIQUE,
    payload         jsonb NOT NULL,
    correlation_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
