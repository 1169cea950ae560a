-- Grouping: the incidents that share a root cause (one vendor failing,
-- and the same error code) inside a grouping window are told in one
-- notification per channel and level, which lists them. A notification
-- keeps its first incident in `incident_id` (its identity and PagerDuty's
-- `dedup_key`); `notification_incidents` holds every incident it tells of,
-- and is what makes (incident, channel, level, type) once: an incident is
-- in at most one notification of each.
ALTER TABLE notifications ADD COLUMN group_key text;
ALTER TABLE notifications ADD COLUMN incident_count integer NOT NULL DEFAULT 1;
-- The body for the first incident alone; `body` is it with the group's
-- list, re-made when an incident joins, frozen at the first try.
ALTER TABLE notifications ADD COLUMN lead_body text;

CREATE TABLE notification_incidents (
    notification_id uuid NOT NULL REFERENCES notifications (id),
    incident_id     uuid NOT NULL REFERENCES incidents (id),
    channel_id      uuid NOT NULL,
    level           integer NOT NULL,
    type            text NOT NULL,
    joined_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, channel_id, level, type)
);
CREATE INDEX notification_incidents_notification ON notification_incidents (notification_id);
INSERT INTO notification_incidents (notification_id, incident_id, channel_id, level, type, joined_at)
SELECT id, incident_id, channel_id, level, type, created_at FROM notifications;

-- The open groups an escalation may join: never tried yet.
CREATE INDEX notifications_open_groups ON notifications (channel_id, level, type, group_key)
    WHERE status = 'PENDING' AND tries = 0 AND group_key IS NOT NULL;

-- Per channel: how long its level waits for an acknowledgement before the
-- next level is told (the level's is the least of its channels'; none:
-- `notifications.escalate_after_ms`), and its delivery rate limit
-- (none: `notifications.channel_rate_per_minute`).
ALTER TABLE channels ADD COLUMN escalate_after_ms bigint CHECK (escalate_after_ms > 0);
ALTER TABLE channels ADD COLUMN rate_per_minute integer CHECK (rate_per_minute > 0);
