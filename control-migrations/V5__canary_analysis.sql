-- Fleet dry-runs, quarantine and canary analysis.

-- A dry-run wave runs every pending migration of its tenants in a transaction that is
-- always rolled back; it writes nothing to tenants, never halts, and its failed tenants
-- can be quarantined by a later real wave (exclude_failed_of).
ALTER TABLE control_plane.waves
    ADD COLUMN dry_run           boolean NOT NULL DEFAULT false,
    ADD COLUMN exclude_failed_of uuid REFERENCES control_plane.waves (id) ON DELETE SET NULL,
    -- An operator ended the soak early (POST /v1/waves/{id}/promote).
    ADD COLUMN promoted_by       text,
    ADD COLUMN promoted_at       timestamptz;

-- What a dry run found for one tenant (code, message, detail, file; or the files it did
-- not run), and the reason a quarantined tenant was skipped.
ALTER TABLE control_plane.wave_targets ADD COLUMN detail jsonb;

-- The analysis checks of a wave, evaluated while it soaks. A row is also the claim: a
-- replica takes a due check with FOR UPDATE SKIP LOCKED, sets running_until (a lease,
-- so a replica that dies mid-evaluation loses it) and next_run_at, commits, evaluates,
-- then records. The counters restart whenever the wave (re-)enters the soak.
CREATE TABLE control_plane.wave_checks (
    wave_id            uuid NOT NULL REFERENCES control_plane.waves (id) ON DELETE CASCADE,
    name               text NOT NULL,
    kind               text NOT NULL CONSTRAINT wave_checks_kind_valid CHECK (kind IN ('sql', 'prometheus')),
    -- The check as validated: query, success_condition, timeout.
    spec               jsonb NOT NULL,
    interval_seconds   integer NOT NULL CHECK (interval_seconds > 0),
    failure_limit      integer NOT NULL CHECK (failure_limit >= 0),
    inconclusive_limit integer NOT NULL CHECK (inconclusive_limit >= 0),
    runs               integer NOT NULL DEFAULT 0,
    failures           integer NOT NULL DEFAULT 0,
    inconclusives      integer NOT NULL DEFAULT 0,
    next_run_at        timestamptz,
    running_by         text,
    running_until      timestamptz,
    PRIMARY KEY (wave_id, name)
);

CREATE INDEX wave_checks_due_idx ON control_plane.wave_checks (next_run_at);

-- Every measurement: one per canary tenant for a sql check, one per run for a
-- prometheus check. Shown by GET /v1/waves/{id}; the halt reason quotes the failures.
CREATE TABLE control_plane.wave_check_evaluations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wave_id      uuid NOT NULL,
    check_name   text NOT NULL,
    -- The canary tenant a sql check ran on; NULL for prometheus checks.
    tenant_slug  text,
    value        text,
    verdict      text NOT NULL CONSTRAINT wave_check_evaluations_verdict_valid
        CHECK (verdict IN ('pass', 'fail', 'inconclusive')),
    -- Why a measurement was inconclusive (connection refused, no data, ...).
    detail       text,
    evaluated_by text NOT NULL,
    evaluated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (wave_id, check_name) REFERENCES control_plane.wave_checks (wave_id, name) ON DELETE CASCADE
);

CREATE INDEX wave_check_evaluations_wave_idx ON control_plane.wave_check_evaluations (wave_id, id);
