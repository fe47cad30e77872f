-- Every object of a tenant's application schemas in one statement: (kind, parent, name,
-- body). `parent` is the owning table for columns, indexes, constraints and triggers.
-- Left out: the system schemas, drover's history table, extension-owned objects
-- (pg_depend deptype 'e'), internal triggers (foreign keys) and NOT NULL constraints
-- (the column says it). Sequence values and statistics are data, not schema.
WITH app_ns AS (
    SELECT ns.oid, ns.nspname
    FROM pg_namespace ns
    WHERE ns.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND ns.nspname NOT LIKE 'pg\_temp\_%' AND ns.nspname NOT LIKE 'pg\_toast\_temp\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_namespace'::regclass AND d.objid = ns.oid AND d.deptype = 'e')
), rels AS (
    SELECT c.oid, n.nspname, c.relname, c.relkind, c.relpersistence
    FROM pg_class c JOIN app_ns n ON n.oid = c.relnamespace
    WHERE c.relname NOT IN ('refinery_schema_history', 'refinery_schema_history_pkey')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
)
SELECT 'schema' AS kind, '' AS parent, nspname::text AS name, '' AS body FROM app_ns
UNION ALL
SELECT 'extension', '', x.extname::text, x.extversion || ' in ' || x.extnamespace::regnamespace::text
FROM pg_extension x
UNION ALL
SELECT 'table', '', nspname || '.' || relname,
       CASE relkind WHEN 'p' THEN 'partitioned' WHEN 'f' THEN 'foreign' ELSE 'table' END
       || CASE relpersistence WHEN 'u' THEN ' unlogged' ELSE '' END
FROM rels WHERE relkind IN ('r', 'p', 'f')
UNION ALL
SELECT 'column', r.nspname || '.' || r.relname, a.attname::text,
       format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || CASE WHEN a.attgenerated <> '' THEN ' generated always as ' || pg_get_expr(ad.adbin, ad.adrelid)
               ELSE coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '') END
       || CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
               THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END
       || CASE a.attidentity WHEN 'a' THEN ' identity always' WHEN 'd' THEN ' identity by default' ELSE '' END
FROM rels r
JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type ty ON ty.oid = a.atttypid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE r.relkind IN ('r', 'p', 'f')
UNION ALL
SELECT 'index', t.nspname || '.' || t.relname, r.relname::text,
       pg_get_indexdef(r.oid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
FROM rels r
JOIN pg_index i ON i.indexrelid = r.oid
JOIN rels t ON t.oid = i.indrelid
UNION ALL
SELECT 'constraint', n.nspname || '.' || coalesce(t.relname, ty.typname), co.conname::text,
       pg_get_constraintdef(co.oid) || CASE WHEN co.convalidated THEN '' ELSE ' NOT VALID' END
FROM pg_constraint co
JOIN app_ns n ON n.oid = co.connamespace
LEFT JOIN rels t ON t.oid = co.conrelid
LEFT JOIN pg_type ty ON ty.oid = co.contypid
WHERE co.contype <> 'n' AND (t.oid IS NOT NULL OR (co.conrelid = 0 AND ty.oid IS NOT NULL))
UNION ALL
SELECT 'sequence', '', r.nspname || '.' || r.relname,
       format_type(s.seqtypid, NULL) || ' start ' || s.seqstart || ' increment ' || s.seqincrement
       || ' min ' || s.seqmin || ' max ' || s.seqmax || ' cache ' || s.seqcache
       || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END
FROM rels r JOIN pg_sequence s ON s.seqrelid = r.oid
UNION ALL
SELECT 'view', '', nspname || '.' || relname,
       CASE relkind WHEN 'm' THEN 'materialized ' ELSE '' END || pg_get_viewdef(oid)
FROM rels WHERE relkind IN ('v', 'm')
UNION ALL
SELECT 'function', '', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid)
            ELSE 'aggregate returning ' || format_type(p.prorettype, NULL) END
FROM pg_proc p JOIN app_ns n ON n.oid = p.pronamespace
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'trigger', r.nspname || '.' || r.relname, tg.tgname::text,
       pg_get_triggerdef(tg.oid) || CASE tg.tgenabled WHEN 'D' THEN ' DISABLED' WHEN 'O' THEN '' ELSE ' ENABLED ' || tg.tgenabled::text END
FROM pg_trigger tg JOIN rels r ON r.oid = tg.tgrelid
WHERE NOT tg.tgisinternal
UNION ALL
SELECT 'type', '', n.nspname || '.' || t.typname,
       CASE t.typtype
           WHEN 'e' THEN 'enum (' || coalesce((SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                                               FROM pg_enum e WHERE e.enumtypid = t.oid), '') || ')'
           ELSE 'domain ' || format_type(t.typbasetype, t.typtypmod)
                || CASE WHEN t.typnotnull THEN ' not null' ELSE '' END
                || coalesce(' default ' || t.typdefault, '')
       END
FROM pg_type t JOIN app_ns n ON n.oid = t.typnamespace
WHERE t.typtype IN ('e', 'd')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
