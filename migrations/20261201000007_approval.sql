-- Retries that wait for an operator: what each waits for, and who approved it.

-- `approval`: an operator's approval (`approve` mode), and also the end of
-- any pause; `pause`: only the end of the tenant's or every tenant's pause;
-- `hold`: its hold (an approved or resumed retry the vendor's breaker
-- stopped), released with it. NULL for a retry that waits for nothing.
ALTER TABLE actions
    ADD COLUMN waiting_for text CHECK (waiting_for IN ('approval', 'pause', 'hold')),
    ADD COLUMN approved_by text,
    ADD COLUMN approved_at timestamptz;

-- What the coordinator moves on: waiting retries, oldest first.
CREATE INDEX actions_waiting ON actions (created_at, id)
    WHERE status = 'PENDING' AND waiting_for IS NOT NULL;
