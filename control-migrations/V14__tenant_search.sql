-- Tenant search (GET /v1/tenants?q=, SPEC §20): a case-insensitive substring of the slug or
-- the display name. With pg_trgm, trigram GIN indexes answer `ILIKE '%q%'` without reading
-- every tenant; without it the same query is a sequential scan, correct but slower at scale.
--
-- pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may create it. A role
-- that may not, or a server without the contrib files, must not block the upgrade: the
-- failure is caught and left as a NOTICE, and `drover doctor` reports search unindexed.
-- Installing it later: CREATE EXTENSION pg_trgm; then the two CREATE INDEX statements
-- below with the extension's schema.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION
    WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
        RAISE NOTICE 'pg_trgm is not available (%): tenant search (q=) works unindexed', SQLERRM;
END
$$;

DO $$
DECLARE
    trgm_schema text;
BEGIN
    SELECT n.nspname INTO trgm_schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
        -- The operator class is named with its schema: the extension may live outside the
        -- search_path of whoever runs later migrations.
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS tenants_slug_trgm_idx ON control_plane.tenants '
            'USING gin (slug %I.gin_trgm_ops)', trgm_schema);
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS tenants_display_name_trgm_idx ON control_plane.tenants '
            'USING gin (display_name %I.gin_trgm_ops)', trgm_schema);
    END IF;
END
$$;
