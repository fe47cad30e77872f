-- A provisioning job that failed retryably is tried again on a schedule kept here, not in
-- the memory of the replica that ran it: `provision_attempts` is how many attempts have
-- failed since the job last started afresh, `provision_retry_at` when the next one is due
-- (NULL: none is; the job succeeded, failed for good, or used its retries). The replica
-- that failed waits for that time itself; every replica's `provision-resume` task starts
-- the ones still due a few seconds later (that replica stopped), continuing the count.
ALTER TABLE control_plane.tenants
    ADD COLUMN provision_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN provision_retry_at timestamptz;

-- The resume task's scan: only tenants with a retry due, a handful at any time.
CREATE INDEX tenants_provision_retry_at ON control_plane.tenants (provision_retry_at)
    WHERE provision_retry_at IS NOT NULL;
