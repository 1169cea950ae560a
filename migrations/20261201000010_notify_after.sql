-- A notification held back by its error code's `notify_after` is cancelled,
-- never sent, when its incident resolves first.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'CANCELLED'));
