-- Retention: what grows with traffic is kept as long as its row here says,
-- then deleted in bulk by the detector's retention task. Idempotency keys
-- are kept at least 7 days (the ingestion contract: a key is a duplicate
-- for at least that long); published outbox rows at least an hour (the
-- relay's sweeper looks only at unpublished ones). An operator reads and
-- changes these with `awfdrs retention show|set`.
CREATE TABLE retention (
    name            text PRIMARY KEY CHECK (name IN ('ingest_keys', 'outbox')),
    keep            interval NOT NULL CHECK (keep >= interval '1 hour'),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text NOT NULL DEFAULT 'default',
    last_pruned_at  timestamptz,
    last_pruned     bigint NOT NULL DEFAULT 0,
    CHECK (name <> 'ingest_keys' OR keep >= interval '7 days')
);
INSERT INTO retention (name, keep) VALUES ('ingest_keys', '30 days'), ('outbox', '1 day');

-- Rows are inserted in time order, so a BRIN index finds the old ones for
-- next to nothing on insert.
CREATE INDEX ingest_keys_created_brin ON ingest_keys USING brin (created_at);
CREATE INDEX outbox_created_brin ON outbox USING brin (created_at);
