-- Remediation: the actions the coordinator takes on decisions, each with its
-- timeline, and each tenant's remediation mode.

-- How a tenant's incidents are remediated: `auto` acts; `approve` makes
-- retries wait for an operator's approval; `shadow` records would-be
-- actions and sends nothing; `off` records decisions only. `paused` stops
-- every automatic retry of the tenant until resumed.
CREATE TABLE tenant_modes (
    tenant_id       uuid PRIMARY KEY REFERENCES tenants (id),
    mode            text NOT NULL DEFAULT 'auto' CHECK (mode IN ('auto', 'approve', 'shadow', 'off')),
    paused          boolean NOT NULL DEFAULT false,
    changed_by      text NOT NULL,
    reason          text NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now()
);

-- Every automatic retry of every tenant paused at once (`awfdrs pause`).
CREATE TABLE remediation_pause (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    paused          boolean NOT NULL,
    changed_by      text NOT NULL,
    reason          text NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per action. Its id is a UUIDv5 of (incident, kind, attempt), and a
-- decision makes at most one action, so redelivered decisions and competing
-- coordinators cannot make one twice.
CREATE TABLE actions (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    incident_id     uuid NOT NULL REFERENCES incidents (id),
    -- The decision that made it; NULL for the retry or escalation a released
    -- hold makes (the hold names the decision).
    decision_id     uuid UNIQUE REFERENCES decisions (id),
    kind            text NOT NULL CHECK (kind IN ('retry', 'escalate', 'hold', 'none')),
    status          text NOT NULL CHECK (status IN
                        ('PENDING', 'SCHEDULED', 'EXECUTING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    -- The retry attempt this action is or holds (a hold consumes none: it
    -- names the attempt that waits); 0 for an escalation.
    attempt         integer NOT NULL CHECK (attempt >= 0),
    -- Recorded in shadow mode: never executed.
    shadow          boolean NOT NULL DEFAULT false,
    due_at          timestamptz,
    reason          text NOT NULL,
    -- The hard limit or policy setting that turned a retry into an escalation.
    limit_key       text,
    vendor          text,
    workflow_id     text NOT NULL,
    -- The failure a retry retries: its run, step and idempotency key.
    workflow_run_id text,
    step            text,
    idempotency_key text,
    correlation_id  text NOT NULL,
    -- When the scheduler fired it (published its retry command).
    fired_at        timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (incident_id, kind, attempt)
);
CREATE INDEX actions_tenant_incident ON actions (tenant_id, incident_id, created_at);
-- What a scheduler claims: due retries.
CREATE INDEX actions_due ON actions (due_at) WHERE status = 'SCHEDULED' AND NOT shadow;
-- Held retries, per vendor, to release when its breaker half-opens.
CREATE INDEX actions_held ON actions (vendor) WHERE kind = 'hold' AND status = 'PENDING';

-- Every status change of an action, timestamped and attributed.
CREATE TABLE action_transitions (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    action_id       uuid NOT NULL REFERENCES actions (id),
    from_status     text,
    to_status       text NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    actor           text NOT NULL,
    reason          text NOT NULL
);
CREATE INDEX action_transitions_action ON action_transitions (tenant_id, action_id, id);
