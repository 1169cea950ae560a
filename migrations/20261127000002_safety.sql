-- The safety layer's records: circuit breaker transitions and retry attempts.

-- Every change of a vendor's circuit breaker, whoever made it (the detector's
-- merge of outcomes, the clock, a probe, an operator), once per change.
--
-- This is the one table without tenant_id, on purpose: a vendor (stripe,
-- twilio, …) is shared by every tenant, and so is its breaker. An outage seen
-- through two tenants' traffic opens one breaker that holds every tenant's
-- retries; its history belongs to no tenant, and an admin reads it.
CREATE TABLE breaker_transitions (
    id              bigserial PRIMARY KEY,
    vendor          text NOT NULL,
    from_state      text NOT NULL CHECK (from_state IN ('CLOSED', 'OPEN', 'HALF_OPEN')),
    to_state        text NOT NULL CHECK (to_state IN ('CLOSED', 'OPEN', 'HALF_OPEN')),
    -- When the transition happened (the writer's clock).
    at              timestamptz NOT NULL,
    -- Who or what: detector:<worker>, clock:<worker>, probe:<holder>, operator:<name>.
    actor           text NOT NULL,
    reason          text NOT NULL,
    -- Failure rate of the window when it happened.
    failure_rate    double precision,
    -- Revision of the KV entry the transition was written in: one write, one row,
    -- however often the recording is retried.
    kv_revision     bigint NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (from_state <> to_state),
    UNIQUE (vendor, kv_revision, at)
);
CREATE INDEX breaker_transitions_vendor_at ON breaker_transitions (vendor, at DESC, id DESC);

-- One row per retry sent: what the hard limits count (per workflow run, per
-- incident, per vendor per hour). The coordinator reserves a row before it
-- schedules a retry; (tenant, action, attempt) makes a redelivered command
-- count once.
CREATE TABLE retry_attempts (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    incident_id     uuid NOT NULL REFERENCES incidents (id),
    action_id       uuid NOT NULL,
    attempt         integer NOT NULL CHECK (attempt >= 1),
    workflow_run_id text,
    vendor          text,
    attempted_at    timestamptz NOT NULL,
    UNIQUE (tenant_id, action_id, attempt)
);
CREATE INDEX retry_attempts_incident ON retry_attempts (tenant_id, incident_id);
CREATE INDEX retry_attempts_run ON retry_attempts (tenant_id, workflow_run_id)
    WHERE workflow_run_id IS NOT NULL;
-- Vendors are global: the hourly cap counts every tenant's retries to a vendor.
CREATE INDEX retry_attempts_vendor_at ON retry_attempts (vendor, attempted_at)
    WHERE vendor IS NOT NULL;
