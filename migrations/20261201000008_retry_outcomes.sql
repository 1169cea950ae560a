-- A failure of a workflow run after its retry was fired counts against that
-- retry: the detector looks up the fired retries of the runs it sees fail.
CREATE INDEX actions_fired_runs ON actions (tenant_id, workflow_run_id)
    WHERE kind = 'retry' AND status = 'EXECUTING';

-- How often the scheduler deferred a due retry because its vendor's breaker
-- did not let retries through; a deferred retry takes a token of the
-- vendor's rate limit when it goes, so that those deferred across an outage
-- are paced as they are released.
ALTER TABLE actions ADD COLUMN deferrals integer NOT NULL DEFAULT 0 CHECK (deferrals >= 0);
