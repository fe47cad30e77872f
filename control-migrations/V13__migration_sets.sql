-- Migration sets published to the control DB (SPEC §21). A set is content-addressed: its
-- id is the SHA-256 of its ordered file names and refinery checksums, so pushing the same
-- files again finds the same row. Sets and their files never change once written (a
-- trigger refuses updates); a set is deleted whole, only when nothing unfinished uses it.
CREATE TABLE control_plane.migration_sets (
    id             text PRIMARY KEY
        CONSTRAINT migration_sets_id_format CHECK (id ~ '^[0-9a-f]{64}$'),
    latest_version integer NOT NULL,
    file_count     integer NOT NULL,
    total_bytes    bigint NOT NULL,
    -- The lint report of the whole set at push time (`drover migrations lint` output).
    lint           jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- "latest" is the most recently pushed set.
CREATE INDEX migration_sets_created_idx ON control_plane.migration_sets (created_at DESC, id);

CREATE TABLE control_plane.migration_set_files (
    set_id         text NOT NULL REFERENCES control_plane.migration_sets (id) ON DELETE CASCADE,
    version        integer NOT NULL CHECK (version > 0),
    name           text NOT NULL CHECK (name ~ '^\w+$'),
    -- refinery's u64 checksum, as the decimal text a wave plan's fingerprint holds.
    checksum       text NOT NULL,
    sql            text NOT NULL,
    no_transaction boolean NOT NULL,
    PRIMARY KEY (set_id, version)
);

-- A label (e.g. the application's git sha) names one set for good; several labels may
-- name the same set (commits that changed no migration push the same files again).
CREATE TABLE control_plane.migration_set_labels (
    label      text PRIMARY KEY
        CONSTRAINT migration_set_labels_format CHECK (label ~ '^[A-Za-z0-9][A-Za-z0-9._/+-]{0,127}$' AND label <> 'latest'),
    set_id     text NOT NULL REFERENCES control_plane.migration_sets (id) ON DELETE CASCADE,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX migration_set_labels_set_idx ON control_plane.migration_set_labels (set_id);

CREATE FUNCTION control_plane.refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'P0001';
END
$$;

CREATE TRIGGER migration_sets_immutable BEFORE UPDATE ON control_plane.migration_sets
    FOR EACH ROW EXECUTE FUNCTION control_plane.refuse_update();
CREATE TRIGGER migration_set_files_immutable BEFORE UPDATE ON control_plane.migration_set_files
    FOR EACH ROW EXECUTE FUNCTION control_plane.refuse_update();
CREATE TRIGGER migration_set_labels_immutable BEFORE UPDATE ON control_plane.migration_set_labels
    FOR EACH ROW EXECUTE FUNCTION control_plane.refuse_update();

-- CI tokens that may publish sets and nothing else.
ALTER TABLE control_plane.access_tokens DROP CONSTRAINT access_tokens_role_valid;
ALTER TABLE control_plane.access_tokens ADD CONSTRAINT access_tokens_role_valid
    CHECK (role IN ('viewer', 'resolver', 'operator', 'admin', 'publisher'));
