-- Decisions: what the analyzer concluded about an incident, append-only.
-- A decision is keyed by its incident and its trigger (`opened`,
-- `reopened:<n>`, `breaker-opened:<vendor>:<ms>`), so a redelivered
-- message cannot make a second one; a later trigger makes a new decision
-- that names the one it supersedes.

CREATE TABLE decisions (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    incident_id     uuid NOT NULL REFERENCES incidents (id),
    trigger         text NOT NULL,
    supersedes      uuid REFERENCES decisions (id),
    engine          text NOT NULL,
    engine_version  text NOT NULL,
    recommended     text NOT NULL CHECK (recommended IN ('retry', 'hold', 'escalate', 'none')),
    confidence      real NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    -- The whole decision as published (DecisionV1).
    body            jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (incident_id, trigger)
);
CREATE INDEX decisions_tenant_incident ON decisions (tenant_id, incident_id, recorded_at);

CREATE FUNCTION decisions_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'decisions are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER decisions_append_only
    BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION decisions_are_append_only();

-- Why an incident groups what it groups: the code as the producer sent it
-- (the signature uses its normalised form), and the rule that delayed its
-- opening (`codes.<code>.open_after` in error_codes.yaml), if any.
ALTER TABLE events ADD COLUMN error_code_raw text;
ALTER TABLE incidents ADD COLUMN error_code_raw text;
ALTER TABLE incidents ADD COLUMN open_after_rule text;

-- The hashed character n-gram vector of an incident's error message, for
-- ranking similar incidents, and its locality-sensitive hash keys (one per
-- band of random hyperplanes): incidents whose messages are alike share a
-- key, so candidates come from the GIN index, not from a scan of every
-- past incident. Written by the analyzer.
ALTER TABLE incidents ADD COLUMN message_vector real[];
ALTER TABLE incidents ADD COLUMN message_lsh integer[];
CREATE INDEX incidents_message_lsh ON incidents USING gin (message_lsh);

-- The vendor across tenants in a window: aggregate evidence of an outage.
CREATE INDEX events_vendor_occurred ON events (vendor, occurred_at)
    WHERE vendor IS NOT NULL;

-- Candidates for similar past incidents: the same signature, the same vendor.
CREATE INDEX incidents_tenant_signature_first_seen ON incidents (tenant_id, signature, first_seen DESC);
CREATE INDEX incidents_tenant_vendor_first_seen ON incidents (tenant_id, vendor, first_seen DESC)
    WHERE vendor IS NOT NULL;
-- The open incidents a vendor's breaker opening concerns.
CREATE INDEX incidents_open_vendor ON incidents (vendor)
    WHERE status <> 'RESOLVED' AND vendor IS NOT NULL;
