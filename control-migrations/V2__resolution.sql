-- Resolution support: per-tenant connection options and change notifications.

-- libpq options carried into the resolved DSN (sslmode, sslrootcert, connect_timeout, ...).
-- drover validates the keys against an allow-list before writing.
ALTER TABLE control_plane.tenants
    ADD COLUMN db_options jsonb NOT NULL DEFAULT '{}'::jsonb
        CONSTRAINT tenants_db_options_object CHECK (jsonb_typeof(db_options) = 'object');

-- Every replica caches tenant rows for resolution. Any committed change to a tenant,
-- through any replica or by hand in psql, tells all of them at commit time; the cache
-- TTL is only the fallback for when a replica's LISTEN connection is down.
CREATE FUNCTION control_plane.notify_tenant_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('drover_tenant_changed', lower(OLD.slug));
    ELSE
        PERFORM pg_notify('drover_tenant_changed', lower(NEW.slug));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tenants_notify_changed
    AFTER INSERT OR UPDATE OR DELETE ON control_plane.tenants
    FOR EACH ROW EXECUTE FUNCTION control_plane.notify_tenant_changed();
