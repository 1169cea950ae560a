-- A failure of a workflow run after its retry was fired counts against that
-- retry: the detector looks up the fired retries of the runs it sees fail.
CREATE INDEX actions_fired_runs ON actions (tenant_id, workflow_run_id)
    WHERE kind = 'retry' AND status = 'EXECUTING';
