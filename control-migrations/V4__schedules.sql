-- Scheduled waves, leader election and the replica roster.

-- A named cron expression (as the user wrote it, crontab semantics), its timezone and a
-- wave template (the body of POST /v1/waves). next_fire_at is computed by drover from
-- cron and timezone after every fire or change.
CREATE TABLE control_plane.schedules (
    name                  text PRIMARY KEY
        CONSTRAINT schedules_name_format CHECK (name ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    cron                  text NOT NULL,
    timezone              text NOT NULL DEFAULT 'UTC',
    template              jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled               boolean NOT NULL DEFAULT true,
    -- What a tick does while the schedule's previous wave is unfinished.
    on_overlap            text NOT NULL DEFAULT 'skip'
        CONSTRAINT schedules_on_overlap_valid CHECK (on_overlap IN ('skip', 'queue')),
    -- A tick missed while no leader ran fires late only if it is at most this old.
    misfire_grace_seconds integer NOT NULL DEFAULT 300 CHECK (misfire_grace_seconds >= 0),
    next_fire_at          timestamptz,
    last_fire_at          timestamptz,
    last_wave_id          uuid REFERENCES control_plane.waves (id) ON DELETE SET NULL,
    created_by            text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX schedules_due_idx ON control_plane.schedules (next_fire_at) WHERE enabled;

CREATE TRIGGER schedules_touch_updated_at
    BEFORE UPDATE ON control_plane.schedules
    FOR EACH ROW EXECUTE FUNCTION control_plane.touch_updated_at();

-- One row per tick that was handled. The primary key is the exactly-once guarantee: the
-- row is inserted in the transaction that creates the tick's wave, so a second leader
-- (or a retry) handling the same tick conflicts and rolls its wave back.
CREATE TABLE control_plane.schedule_fires (
    schedule_name text NOT NULL REFERENCES control_plane.schedules (name) ON DELETE CASCADE,
    tick          timestamptz NOT NULL,
    outcome       text NOT NULL
        CONSTRAINT schedule_fires_outcome_valid CHECK (outcome IN ('fired', 'skipped_overlap', 'skipped_missed', 'failed')),
    wave_id       uuid REFERENCES control_plane.waves (id) ON DELETE SET NULL,
    detail        text,
    handled_by    text NOT NULL,
    handled_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_name, tick)
);

-- The leader lease: one row, taken by whoever finds it free or expired, renewed by its
-- holder. `term` grows with every change of holder.
CREATE TABLE control_plane.leader (
    id         integer PRIMARY KEY CHECK (id = 1),
    holder     text,
    term       bigint NOT NULL DEFAULT 0,
    expires_at timestamptz
);
INSERT INTO control_plane.leader (id) VALUES (1);

-- Live replicas, for GET /v1/cluster: each renews its row while it runs.
CREATE TABLE control_plane.replicas (
    instance_id    text PRIMARY KEY,
    version        text NOT NULL,
    started_at     timestamptz NOT NULL,
    last_heartbeat timestamptz NOT NULL
);
