-- No planner statistics on events.tenant_id. Tenants come and grow between
-- two ANALYZEs of a day's partition: with a most-common-values list that
-- misses a tenant, the planner expects one row of it, and then prefers the
-- smaller (tenant_id, workflow_id) index to (tenant_id, signature,
-- occurred_at) for a signature's events, reading every event of the
-- tenant's day to find them (measured: 50 ms instead of 0.7 ms per query of
-- the analyzer, three per incident, for a tenant that sent 20,000 events
-- since). Without statistics an equality on tenant_id is taken as the
-- default share of the rows, and the index that also matches the signature
-- wins.
ALTER TABLE events ALTER COLUMN tenant_id SET STATISTICS 0;

-- Partitions made from now on get the same (a new partition does not take
-- it from the parent).
CREATE OR REPLACE FUNCTION events_make_partition(day date) RETURNS boolean LANGUAGE plpgsql AS $$
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
        EXECUTE format('ALTER TABLE %I ALTER COLUMN tenant_id SET STATISTICS 0', part);
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
        EXECUTE format('ALTER TABLE %I ALTER COLUMN tenant_id SET STATISTICS 0', part);
    END IF;
    EXECUTE format('CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON %I
                    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only()', part);
    RETURN true;
END
$$;
