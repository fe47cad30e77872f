-- Schema drift: what each tenant's schema really is (its fingerprint), and what it should
-- be at each version of a migration set (a replay on a scratch database).

-- One row per distinct schema: the fleet shares a few, so the per-object map (key →
-- {h: hash, d: short detail}) is stored once however many tenants have it.
CREATE TABLE control_plane.drift_schemas (
    fingerprint text PRIMARY KEY
        CONSTRAINT drift_schemas_fingerprint_format CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    objects     jsonb NOT NULL
        CONSTRAINT drift_schemas_objects_object CHECK (jsonb_typeof(objects) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Each tenant's latest fingerprint. `version` is the highest applied migration when it
-- was taken (NULL: no history); `drifted` is the answer last signalled (the
-- tenant.drift_detected / tenant.drift_resolved events fire when it changes).
CREATE TABLE control_plane.tenant_drift (
    tenant_id   uuid PRIMARY KEY REFERENCES control_plane.tenants (id) ON DELETE CASCADE,
    fingerprint text NOT NULL REFERENCES control_plane.drift_schemas (fingerprint),
    version     integer,
    scanned_at  timestamptz NOT NULL DEFAULT now(),
    drifted     boolean NOT NULL DEFAULT false
);

CREATE INDEX tenant_drift_cohort_idx ON control_plane.tenant_drift (version, fingerprint);
CREATE INDEX tenant_drift_fingerprint_idx ON control_plane.tenant_drift (fingerprint);

-- The expected schema after each version of a set, from a replay on a scratch database.
CREATE TABLE control_plane.drift_expected (
    set_id      text NOT NULL,
    version     integer NOT NULL,
    fingerprint text NOT NULL REFERENCES control_plane.drift_schemas (fingerprint),
    replayed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (set_id, version)
);

CREATE INDEX drift_expected_fingerprint_idx ON control_plane.drift_expected (fingerprint);

-- Scans asked for (POST /v1/drift/scans, `drover drift scan`, the periodic scan): the
-- leader claims the oldest unstarted one.
CREATE TABLE control_plane.drift_scans (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    tenants      integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0
);

CREATE INDEX drift_scans_pending_idx ON control_plane.drift_scans (requested_at)
    WHERE finished_at IS NULL;

INSERT INTO control_plane.event_types (name, description) VALUES
    ('drift_detected', 'schema drift: the tenant''s schema differs from the expected schema of its version; payload {version, fingerprint, expected_fingerprint, reference, differences: [{object, kind}], more}'),
    ('drift_resolved', 'schema drift: the tenant''s schema is the expected one again; payload {version, fingerprint}');
