-- HTTP callbacks: a tenant's workflow may register a URL that the scheduler
-- POSTs each of its retry commands to, signed with Standard Webhooks; every
-- delivery is a durable row, retried with backoff until delivered or out of
-- tries, and each try is recorded.

-- One callback per (tenant, workflow). `secret` is the Standard Webhooks
-- signing secret (`whsec_...`); only libs/store/src/callbacks.rs reads or
-- writes it. A new PUT replaces the URL and rotates the secret.
CREATE TABLE workflow_callbacks (
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    workflow_id     text NOT NULL,
    url             text NOT NULL,
    secret          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, workflow_id)
);

-- The delivery of one retry command (action and attempt) to its workflow's
-- callback, written in the transaction that fires the retry. `body` is the
-- exact JSON published on NATS; `msg_id` (`retry:<action_id>:<attempt>`) is
-- its `webhook-id`. A scheduler claims a due row by pushing `next_try_at`
-- forward by a lease, commits, POSTs, then records the outcome.
CREATE TABLE callback_deliveries (
    id               bigserial PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    action_id        uuid NOT NULL REFERENCES actions (id),
    attempt          integer NOT NULL,
    workflow_id      text NOT NULL,
    msg_id           text NOT NULL,
    -- The URL registered when the retry fired, and the one last tried.
    url              text NOT NULL,
    body             text NOT NULL,
    status           text NOT NULL DEFAULT 'PENDING'
                         CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    tries            integer NOT NULL DEFAULT 0,
    next_try_at      timestamptz NOT NULL DEFAULT now(),
    last_try_at      timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (action_id, attempt)
);
CREATE INDEX callback_deliveries_due ON callback_deliveries (next_try_at) WHERE status = 'PENDING';
CREATE INDEX callback_deliveries_tenant ON callback_deliveries (tenant_id, action_id);

-- Every try of a delivery: when it started, what came back, and what
-- followed (delivered, retried at `next_try_at`, or failed).
CREATE TABLE callback_tries (
    id               bigserial PRIMARY KEY,
    delivery_id      bigint NOT NULL REFERENCES callback_deliveries (id),
    try              integer NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL DEFAULT now(),
    status_code      integer,
    error            text,
    outcome          text NOT NULL CHECK (outcome IN ('delivered', 'retried', 'failed')),
    next_try_at      timestamptz,
    UNIQUE (delivery_id, try)
);
