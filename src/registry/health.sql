-- Registry health findings: one row per kind of inconsistency, with the slugs involved.
-- The unique indexes and CHECK constraints should make most of these impossible; this
-- report exists for the cases they cannot cover (restored dumps, hand edits with
-- triggers disabled, a crash between steps of a multi-step operation).
--
-- $1: seconds a tenant may sit in 'provisioning' (unchanged) before it counts as stuck.
WITH live AS (
    SELECT * FROM control_plane.tenants WHERE deleted_at IS NULL
),
last_migrated AS (
    -- The `to` of each live tenant's newest `migrated` event (NULL when it has none).
    SELECT t.id, t.slug, t.schema_version, m.to_version
    FROM live t
    LEFT JOIN LATERAL (
        SELECT CASE WHEN e.payload->>'to' ~ '^-?[0-9]+$' THEN (e.payload->>'to')::int END AS to_version
        FROM control_plane.tenant_events e
        WHERE e.tenant_id = t.id AND e.event_type = 'migrated'
        ORDER BY e.created_at DESC, e.id DESC
        LIMIT 1
    ) m ON true
)
SELECT 'duplicate_slug' AS kind, array_agg(slug ORDER BY slug) AS slugs
FROM live
WHERE lower(slug) IN (SELECT lower(slug) FROM live GROUP BY 1 HAVING count(*) > 1)
UNION ALL
SELECT 'duplicate_db_name', array_agg(slug ORDER BY slug)
FROM live
WHERE lower(db_name) IN (SELECT lower(db_name) FROM live GROUP BY 1 HAVING count(*) > 1)
UNION ALL
SELECT 'stuck_provisioning', array_agg(slug ORDER BY slug)
FROM live
WHERE status = 'provisioning' AND updated_at < now() - make_interval(secs => $1::float8)
UNION ALL
SELECT 'schema_version_mismatch', array_agg(slug ORDER BY slug)
FROM last_migrated
WHERE schema_version IS DISTINCT FROM to_version
UNION ALL
SELECT 'soft_delete_incoherent', array_agg(slug ORDER BY slug)
FROM control_plane.tenants
WHERE (deleted_at IS NOT NULL AND status NOT IN ('deleting', 'deleted'))
   OR (status = 'deleted' AND deleted_at IS NULL);
