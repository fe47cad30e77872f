-- Migration waves. A wave's plan is frozen when it is created: the exact tenants, their
-- phase (0 = canary, 1..n = batches) and the migration files' checksums. Targets are
-- the unit of work: replicas claim them with FOR UPDATE SKIP LOCKED and a lease, so a
-- replica that dies mid-tenant loses its claim when the lease runs out.

-- A migration problem that needs a person (drift, half-applied no-transaction file);
-- cleared by the next successful migration of the tenant. /v1/fleet reports these.
ALTER TABLE control_plane.tenants ADD COLUMN migration_issue jsonb;

CREATE TABLE control_plane.waves (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    state                text NOT NULL DEFAULT 'pending'
        CONSTRAINT waves_state_valid CHECK (state IN
            ('pending', 'canary', 'soaking', 'rolling', 'completed', 'halted', 'paused', 'aborted')),
    -- The state a paused wave returns to on resume.
    paused_from          text,
    target_version       integer NOT NULL,
    -- 0 while canaries run; then the batch being rolled out, 1..phase_count.
    current_phase        integer NOT NULL DEFAULT 0,
    phase_count          integer NOT NULL,
    -- The request as given plus the migration fingerprint; the columns below are its
    -- effective values, kept as columns because the claim query reads them.
    plan                 jsonb NOT NULL,
    batch_size           integer NOT NULL CHECK (batch_size > 0),
    max_concurrency      integer NOT NULL CHECK (max_concurrency > 0),
    max_per_host         integer NOT NULL CHECK (max_per_host > 0),
    max_failures         integer CHECK (max_failures >= 0),
    max_failure_percent  double precision CHECK (max_failure_percent BETWEEN 0 AND 100),
    soak_seconds         integer NOT NULL CHECK (soak_seconds >= 0),
    lock_timeout_ms      integer NOT NULL CHECK (lock_timeout_ms > 0),
    statement_timeout_ms integer NOT NULL CHECK (statement_timeout_ms > 0),
    max_attempts         integer NOT NULL CHECK (max_attempts > 0),
    soak_until           timestamptz,
    halt_reason          text,
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    started_at           timestamptz,
    finished_at          timestamptz
);

CREATE INDEX waves_active_idx ON control_plane.waves (created_at)
    WHERE state IN ('pending', 'canary', 'soaking', 'rolling');

CREATE TRIGGER waves_touch_updated_at
    BEFORE UPDATE ON control_plane.waves
    FOR EACH ROW EXECUTE FUNCTION control_plane.touch_updated_at();

CREATE TABLE control_plane.wave_targets (
    wave_id          uuid NOT NULL REFERENCES control_plane.waves (id) ON DELETE CASCADE,
    tenant_id        uuid NOT NULL REFERENCES control_plane.tenants (id),
    -- Frozen at plan time: what the operator saw, and the host for the per-host cap.
    slug             text NOT NULL,
    db_host          text NOT NULL,
    phase            integer NOT NULL CHECK (phase >= 0),
    state            text NOT NULL DEFAULT 'pending'
        CONSTRAINT wave_targets_state_valid CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    from_version     integer,
    to_version       integer,
    error_kind       text,
    error            text,
    started_at       timestamptz,
    finished_at      timestamptz,
    duration_ms      bigint,
    PRIMARY KEY (wave_id, tenant_id)
);

CREATE INDEX wave_targets_claim_idx ON control_plane.wave_targets (wave_id, phase, state, next_attempt_at);
CREATE INDEX wave_targets_running_idx ON control_plane.wave_targets (wave_id, lease_expires_at) WHERE state = 'running';
