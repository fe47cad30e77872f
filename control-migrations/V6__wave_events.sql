-- The wave timeline: every change of a wave's state writes exactly one row here, in the
-- transaction that changes the wave (src/waves/timeline.rs). Oldest first by id.
-- Ids come from tenant_events' sequence, so the fleet's event feed (src/events) has one
-- id space: unique and comparable across tenant and wave events.

CREATE TABLE control_plane.wave_events (
    id         bigint PRIMARY KEY DEFAULT nextval('control_plane.tenant_events_id_seq'),
    wave_id    uuid NOT NULL REFERENCES control_plane.waves (id) ON DELETE CASCADE,
    event_type text NOT NULL
        CONSTRAINT wave_events_type_valid CHECK (event_type IN
            ('created', 'canary_started', 'canary_passed', 'soak_started', 'soak_passed',
             'promoted', 'batch_started', 'halted', 'paused', 'resumed', 'aborted', 'completed')),
    -- `drover` for the engine, the caller's identity for operator actions.
    actor      text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX wave_events_wave_idx ON control_plane.wave_events (wave_id, id);

-- Waves created before the timeline existed start it with their creation.
INSERT INTO control_plane.wave_events (wave_id, event_type, actor, payload, created_at)
SELECT id, 'created', created_by,
       jsonb_build_object('target_version', target_version, 'backfilled', true), created_at
FROM control_plane.waves
ORDER BY created_at;
