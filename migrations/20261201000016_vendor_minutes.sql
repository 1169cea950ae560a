-- A vendor's events counted by the minute, so that the analyzer's outage
-- evidence (the vendor across the tenant's workflows and across tenants, in
-- `analyzer.vendor_window_secs`) reads a few rows per minute of the window
-- instead of every event of the vendor in it, everyone's.
--
-- The detector adds a batch's events to their rows in its transaction, once
-- the batch has its turn, counting only the events stored now, so a
-- redelivered batch adds nothing. A row is one minute of `occurred_at` and
-- one (tenant, workflow, step, error code) of one vendor; step and error
-- code may be absent (NULLS NOT DISTINCT). The rows are kept as long as
-- events are, and deleted by the retention task when it drops partitions.
CREATE TABLE vendor_minutes (
    vendor      text NOT NULL,
    minute      timestamptz NOT NULL,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    workflow_id text NOT NULL,
    step        text,
    error_code  text,
    calls       bigint NOT NULL CHECK (calls > 0),
    failures    bigint NOT NULL CHECK (failures >= 0),
    successes   bigint NOT NULL CHECK (successes >= 0),
    CHECK (failures + successes <= calls),
    CHECK (minute = date_trunc('minute', minute, 'UTC'))
);
CREATE UNIQUE INDEX vendor_minutes_key ON vendor_minutes
    (vendor, minute, tenant_id, workflow_id, step, error_code) NULLS NOT DISTINCT;
-- Retention deletes by minute alone.
CREATE INDEX vendor_minutes_minute ON vendor_minutes (minute);

-- The minutes of the last day, from the events already stored.
INSERT INTO vendor_minutes (vendor, minute, tenant_id, workflow_id, step, error_code,
                            calls, failures, successes)
SELECT vendor, date_trunc('minute', occurred_at, 'UTC'), tenant_id, workflow_id, step, error_code,
       count(*),
       count(*) FILTER (WHERE event_type IN ('step_failed', 'workflow_failed')),
       count(*) FILTER (WHERE event_type IN ('step_succeeded', 'workflow_succeeded'))
FROM events
WHERE vendor IS NOT NULL AND received_at > now() - interval '1 day'
GROUP BY 1, 2, 3, 4, 5, 6;

-- Nothing else reads events by vendor: one index less on every insert.
DROP INDEX events_vendor_occurred;
