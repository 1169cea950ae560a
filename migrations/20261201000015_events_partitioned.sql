-- Events partitioned by day of `received_at`, with their own retention.
--
-- `events` becomes a table partitioned by RANGE on received_at: one
-- partition per UTC day, named events_pYYYYMMDD, and a DEFAULT partition
-- (events_default) so an insert never fails for lack of one. The detector's
-- retention task creates the partitions of today and the next
-- `retention.partitions_ahead_days` days, moves into its own day partition
-- anything the default partition caught, and detaches and drops whole
-- partitions older than the `events` retention. Events stay append-only:
-- no UPDATE, DELETE or TRUNCATE, on the table or on a partition; only a
-- whole partition past its retention goes.
--
-- The uniqueness of (tenant_id, idempotency_key) is no longer the events
-- table's: ingest_keys holds one row per accepted key and says whether the
-- key's event is stored (`stored`). The detector stores an event only when
-- its transaction took the key's row now, or turned `stored` from false to
-- true (a gateway reservation of that very publish), so a key has one event
-- while its row lives.

-- Rows written by the detector for events it stored are stored; those the
-- gateway reserved are stored once the detector persists their event.
ALTER TABLE ingest_keys ADD COLUMN stored boolean NOT NULL DEFAULT true;
UPDATE ingest_keys k SET stored = false
WHERE NOT EXISTS (SELECT 1 FROM events e
                  WHERE e.tenant_id = k.tenant_id AND e.idempotency_key = k.idempotency_key);
ALTER TABLE ingest_keys ALTER COLUMN stored SET DEFAULT false;

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey;
ALTER TABLE events_unpartitioned DROP CONSTRAINT events_event_type_check,
    DROP CONSTRAINT events_source_check, DROP CONSTRAINT events_tenant_id_fkey;
DROP INDEX events_id, events_tenant_workflow, events_tenant_occurred, events_tenant_signature,
    events_vendor_occurred;

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
    signature       text,
    body_hash       bytea NOT NULL,
    source          text NOT NULL CHECK (source IN ('http', 'nats')),
    metadata        jsonb,
    error_code_raw  text,
    -- The id is the key's (a v5 UUID of tenant and key); received_at first
    -- so inserts go to the right edge of the index.
    PRIMARY KEY (received_at, id)
) PARTITION BY RANGE (received_at);

-- The lean index set; every index serves a query, and costs every insert:
-- * events_pkey (received_at, id): the event's identity per partition, and
--   the bench's commit frontier (latest received_at of a tenant).
-- * events_tenant_signature: a signature's failures since a time: the
--   detector's open_after gate (detect/open_after.rs), the analyzer's
--   failure signals, sample, statuses and latest message (analysis/),
--   and the retry's latest failure (schedule.rs).
-- * events_tenant_workflow: a step's history and releases before an
--   incident (analysis/history.rs), and counts by tenant (event_count).
-- * events_vendor_occurred: a vendor's calls across tenants in a window
--   (analysis/vendor.rs).
-- Gone: (tenant_id, idempotency_key) (ingest_keys decides keys), the unique
-- index on id (nothing reads an event by id alone), and (tenant_id,
-- occurred_at) (only the bench's frontier used it).
CREATE INDEX events_tenant_signature ON events (tenant_id, signature, occurred_at)
    WHERE signature IS NOT NULL;
CREATE INDEX events_tenant_workflow ON events (tenant_id, workflow_id);
CREATE INDEX events_vendor_occurred ON events (vendor, occurred_at)
    WHERE vendor IS NOT NULL;

-- Append-only; moving rows out of the default partition into their day's
-- partition (below) is the one exception.
CREATE OR REPLACE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('awfdrs.events_moving', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'events are append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- Row triggers are cloned onto every partition; statement triggers are not,
-- so each partition gets its own TRUNCATE guard.
CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events_default
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Creates the partition of `day` (UTC) unless there is one; rows of that
-- day the default partition caught are moved into it. True when created.
CREATE FUNCTION events_make_partition(day date) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    part text := 'events_p' || to_char(day, 'YYYYMMDD');
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    -- One maker at a time, whichever process runs it.
    PERFORM pg_advisory_xact_lock(hashtextextended('events_partitions', 0));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM events_default WHERE received_at >= lo AND received_at < hi) THEN
        EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        PERFORM set_config('awfdrs.events_moving', 'on', true);
        EXECUTE format('WITH moved AS (DELETE FROM events_default
                                       WHERE received_at >= $1 AND received_at < $2 RETURNING *)
                        INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
        PERFORM set_config('awfdrs.events_moving', 'off', true);
        EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       part, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                       part, lo, hi);
    END IF;
    EXECUTE format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON %I
                    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only()', part);
    RETURN true;
END
$$;

-- Detaches and drops every day partition wholly older than `before`; one
-- row per partition dropped, with the events it held.
CREATE FUNCTION events_drop_partitions(before timestamptz)
RETURNS TABLE (part text, held bigint) LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('events_partitions', 0));
    FOR p IN
        SELECT c.relname AS name
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_p[0-9]{8}$'
          AND (to_date(substr(c.relname, 9), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= before
        ORDER BY c.relname
    LOOP
        part := p.name;
        EXECUTE format('SELECT count(*) FROM %I', part) INTO held;
        EXECUTE format('ALTER TABLE events DETACH PARTITION %I', part);
        EXECUTE format('DROP TABLE %I', part);
        RETURN NEXT;
    END LOOP;
END
$$;

-- The days the old table holds, and today and the next three, get their
-- partitions; then the rows move over.
SELECT events_make_partition(d)
FROM (SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date AS d FROM events_unpartitioned
      UNION
      SELECT ((now() AT TIME ZONE 'UTC')::date + n) FROM generate_series(0, 3) AS n) days
ORDER BY d;
INSERT INTO events (id, tenant_id, idempotency_key, workflow_id, event_type, occurred_at,
    received_at, workflow_run_id, step, vendor, error_code, error_message, http_status,
    retryable, attempt, correlation_id, signature, body_hash, source, metadata, error_code_raw)
SELECT id, tenant_id, idempotency_key, workflow_id, event_type, occurred_at,
    received_at, workflow_run_id, step, vendor, error_code, error_message, http_status,
    retryable, attempt, correlation_id, signature, body_hash, source, metadata, error_code_raw
FROM events_unpartitioned;
DROP TABLE events_unpartitioned;

-- Vendors seen (tenant_vendors): the statement trigger with its transition
-- table lives on the partitioned table (the moved rows were recorded).
CREATE TRIGGER events_tenant_vendors
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS new
    FOR EACH STATEMENT EXECUTE FUNCTION record_tenant_vendors();

-- The events retention: whole partitions older than this go.
ALTER TABLE retention DROP CONSTRAINT retention_name_check;
ALTER TABLE retention ADD CONSTRAINT retention_name_check
    CHECK (name IN ('ingest_keys', 'outbox', 'events'));
ALTER TABLE retention ADD CONSTRAINT retention_events_check
    CHECK (name <> 'events' OR keep >= interval '1 day');
INSERT INTO retention (name, keep) VALUES ('events', '30 days');
