-- Migration safety (SPEC §19; src/waves/host_limits.rs): the adaptive per-host concurrency
-- of a wave. Every replica claims, so the current limit lives here, keyed by wave and host,
-- and the claim applies it under the wave's row lock. No row: the host runs at the wave's
-- max_per_host (a row is written on the first congestion: lock timeout, refused connection,
-- too many connections).
CREATE TABLE control_plane.wave_host_limits (
    wave_id uuid NOT NULL REFERENCES control_plane.waves (id) ON DELETE CASCADE,
    db_host text NOT NULL,
    -- Tenants this host may run at once for this wave (1 ..= the wave's max_per_host).
    current_limit int NOT NULL CHECK (current_limit >= 1),
    -- Clean finishes since the last change; at current_limit the limit grows by one.
    clean int NOT NULL DEFAULT 0 CHECK (clean >= 0),
    lowered int NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (wave_id, db_host)
);
