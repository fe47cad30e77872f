-- The control-plane schema: the tenant registry, its event log and per-tenant limits.
-- Constraints repeat the rules drover enforces in Rust (slug, secret ref, status) so a
-- row written by hand through psql still cannot break the registry's invariants.

CREATE SCHEMA IF NOT EXISTS control_plane;

CREATE TABLE control_plane.tenants (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug             text NOT NULL
        CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$')
        CONSTRAINT tenants_slug_not_reserved CHECK (slug NOT IN (
            'admin', 'api', 'app', 'default', 'drover', 'healthz', 'internal', 'metrics',
            'new', 'null', 'postgres', 'public', 'readyz', 'root', 'system', 'template0',
            'template1', 'v1', 'www')),
    display_name     text NOT NULL
        CONSTRAINT tenants_display_name_length CHECK (char_length(display_name) BETWEEN 1 AND 200),
    db_name          text NOT NULL
        CONSTRAINT tenants_db_name_format CHECK (db_name ~ '^[A-Za-z_][A-Za-z0-9_-]*$' AND octet_length(db_name) <= 63),
    db_host          text NOT NULL
        CONSTRAINT tenants_db_host_format CHECK (db_host ~ '^[A-Za-z0-9._:/\[\]-]+$' AND octet_length(db_host) <= 255),
    db_port          integer NOT NULL DEFAULT 5432
        CONSTRAINT tenants_db_port_range CHECK (db_port BETWEEN 1 AND 65535),
    db_user          text NOT NULL
        CONSTRAINT tenants_db_user_format CHECK (db_user ~ '^[A-Za-z_][A-Za-z0-9_-]*$' AND octet_length(db_user) <= 63),
    -- Only a reference (env:, file:, vault:) is ever stored; anything that looks like a
    -- URL, a credential or a path escape is refused here as a last line of defence.
    db_secret_ref    text NOT NULL
        CONSTRAINT tenants_db_secret_ref_format CHECK (
            db_secret_ref ~ '^(env|file|vault):[^[:space:]]+$'
            AND position('://' IN db_secret_ref) = 0
            AND position('@' IN db_secret_ref) = 0
            AND position('..' IN db_secret_ref) = 0),
    -- Last applied tenant migration (refinery versions are int4); NULL before the first.
    schema_version   integer,
    app_version      text,
    status           text NOT NULL DEFAULT 'provisioning'
        CONSTRAINT tenants_status_valid CHECK (status IN ('provisioning', 'active', 'suspended', 'deleting', 'deleted')),
    labels           jsonb NOT NULL DEFAULT '{}'::jsonb
        CONSTRAINT tenants_labels_object CHECK (jsonb_typeof(labels) = 'object'),
    canary           boolean NOT NULL DEFAULT false,
    billing_plan     text,
    contact_email    text,
    suspended_reason text,
    maintenance_flag boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);

-- Live rows only: a soft-deleted tenant's slug and database name can be reused.
CREATE UNIQUE INDEX tenants_slug_live_key ON control_plane.tenants (lower(slug)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX tenants_db_name_live_key ON control_plane.tenants (lower(db_name)) WHERE deleted_at IS NULL;
CREATE INDEX tenants_status_idx ON control_plane.tenants (status);
CREATE INDEX tenants_status_updated_idx ON control_plane.tenants (status, updated_at DESC);

CREATE FUNCTION control_plane.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER tenants_touch_updated_at
    BEFORE UPDATE ON control_plane.tenants
    FOR EACH ROW EXECUTE FUNCTION control_plane.touch_updated_at();

CREATE TABLE control_plane.event_types (
    name        text PRIMARY KEY,
    description text NOT NULL
);

INSERT INTO control_plane.event_types (name, description) VALUES
    ('created',        'tenant registered'),
    ('updated',        'tenant fields changed; payload lists the changed fields'),
    ('provisioned',    'role and database created and migrated to the latest version'),
    ('migrated',       'tenant migrations applied; payload {from, to, wave_id, duration_ms}'),
    ('suspended',      'tenant suspended; payload holds the reason'),
    ('resumed',        'suspended tenant made active again'),
    ('deleting',       'soft delete started'),
    ('deleted',        'soft delete finished; slug and db_name free for reuse'),
    ('status_changed', 'status changed outside suspend/resume/delete, e.g. provisioning -> active'),
    ('error',          'an operation on the tenant failed; payload holds the cause');

CREATE TABLE control_plane.tenant_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Deferrable so an event can be written before the row it describes within one transaction.
    tenant_id  uuid NOT NULL REFERENCES control_plane.tenants (id) DEFERRABLE INITIALLY DEFERRED,
    event_type text NOT NULL REFERENCES control_plane.event_types (name),
    actor      text NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tenant_events_tenant_created_idx ON control_plane.tenant_events (tenant_id, created_at DESC, id DESC);

CREATE TABLE control_plane.tenant_limits (
    tenant_id          uuid PRIMARY KEY REFERENCES control_plane.tenants (id),
    max_db_size_mb     integer CHECK (max_db_size_mb > 0),
    max_users          integer CHECK (max_users > 0),
    max_attachments_gb integer CHECK (max_attachments_gb >= 0),
    notes              text,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER tenant_limits_touch_updated_at
    BEFORE UPDATE ON control_plane.tenant_limits
    FOR EACH ROW EXECUTE FUNCTION control_plane.touch_updated_at();
