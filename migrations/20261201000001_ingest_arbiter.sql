-- One arbiter for idempotency keys, whichever way an event arrives.
--
-- Every accepted key has its row in ingest_keys: the gateway writes it in the
-- transaction it holds across the publish (with the reservation it puts on the
-- message), the detector writes it for events published straight to NATS. The
-- detector inserts the row for every event it persists, so a key used with two
-- bodies through HTTP and NATS at once is decided by whichever transaction
-- commits its row first, and the other body is refused on both paths.

-- The gateway's reservation, also carried by the message it published: the
-- detector stores an HTTP event only when the row still holds the reservation
-- of that very publish. A publish the gateway gave up on (and answered 503
-- for) can then never be stored, even if the broker took it after all.
ALTER TABLE ingest_keys ADD COLUMN reservation uuid;

-- Keys of events that reached the detector straight from NATS before this
-- migration had no row.
INSERT INTO ingest_keys (tenant_id, idempotency_key, event_id, body_hash, correlation_id, created_at)
SELECT tenant_id, idempotency_key, id, body_hash, correlation_id, received_at FROM events
ON CONFLICT DO NOTHING;
