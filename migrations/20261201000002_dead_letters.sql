-- Dead letters: every message a consumer gave up on, recorded before the
-- original is terminated, with its full payload whatever its size. The
-- notification on <ns>.dlq.<stage> may omit the payload; this row never
-- does. A consumer records a message once: recording again (after a crash
-- between the record and the terminate) updates the same row.
--
-- Dead letters come from producers who may not name a known tenant, so
-- this table carries no tenant_id; it is read by operators only.
CREATE TABLE dead_letters (
    id               bigserial PRIMARY KEY,
    stage            text NOT NULL,
    subject          text NOT NULL,
    stream_sequence  bigint NOT NULL,
    delivered        bigint NOT NULL,
    consumer         text NOT NULL,
    reason           text NOT NULL,
    -- Header names and values as the bus encodes them (printable ASCII).
    headers          jsonb NOT NULL DEFAULT '{}'::jsonb,
    payload          bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    replayed_at      timestamptz,
    replay_count     integer NOT NULL DEFAULT 0,
    UNIQUE (consumer, stream_sequence)
);

CREATE INDEX dead_letters_stage_created ON dead_letters (stage, created_at DESC);
