//! The drift tables of the control DB (`control_plane.drift_schemas`, `tenant_drift`,
//! `drift_expected`, `drift_scans`): only this file has SQL text for them. No function
//! here runs while a tenant is being read: the fingerprint is taken first, then saved in
//! a short statement of its own.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{DriftError, Fingerprint, SchemaObject};
use crate::db::DbError;
use crate::registry::tenant_table;

fn db(e: tokio_postgres::Error) -> DriftError {
    DriftError::Db(DbError::Postgres(e))
}

fn corrupt(what: &str, e: serde_json::Error) -> DriftError {
    DriftError::Db(DbError::Corrupt {
        what: what.to_string(),
        source: Box::new(e),
    })
}

/// Stores a schema's objects once (a schema many tenants share is one row).
async fn save_schema(client: &impl GenericClient, fp: &Fingerprint) -> Result<(), DriftError> {
    const KNOWN: &str =
        "SELECT EXISTS (SELECT 1 FROM control_plane.drift_schemas WHERE fingerprint = $1) AS ok";
    const SQL: &str = "INSERT INTO control_plane.drift_schemas (fingerprint, objects) \
                       VALUES ($1, $2) ON CONFLICT (fingerprint) DO NOTHING";
    // Most tenants share a schema already stored: skip building and sending its objects.
    let known: bool = client
        .query_one(KNOWN, &[&fp.root])
        .await
        .map_err(db)?
        .try_get("ok")
        .map_err(db)?;
    if known {
        return Ok(());
    }
    let objects = serde_json::to_value(&fp.objects).map_err(|e| corrupt("a fingerprint", e))?;
    client
        .execute(SQL, &[&fp.root, &objects])
        .await
        .map_err(db)?;
    Ok(())
}

/// Records a tenant's fingerprint taken at `version` (its highest applied migration).
pub async fn save_tenant(
    client: &impl GenericClient,
    tenant_id: Uuid,
    version: Option<i32>,
    fp: &Fingerprint,
) -> Result<(), DriftError> {
    save_tenants(client, &[(tenant_id, version, fp)]).await
}

/// Records many tenants' fingerprints in one statement (a wave's completion batch); each
/// distinct schema is stored once. A tenant named twice keeps its last fingerprint.
pub async fn save_tenants(
    client: &impl GenericClient,
    taken: &[(Uuid, Option<i32>, &Fingerprint)],
) -> Result<(), DriftError> {
    const SQL: &str = "INSERT INTO control_plane.tenant_drift (tenant_id, fingerprint, version, scanned_at) \
                       SELECT tenant_id, fingerprint, version, now() \
                       FROM unnest($1::uuid[], $2::text[], $3::int4[]) AS t(tenant_id, fingerprint, version) \
                       ON CONFLICT (tenant_id) DO UPDATE \
                       SET fingerprint = EXCLUDED.fingerprint, version = EXCLUDED.version, scanned_at = now()";
    let mut last: BTreeMap<Uuid, (Option<i32>, &Fingerprint)> = BTreeMap::new();
    for (id, version, fp) in taken {
        last.insert(*id, (*version, *fp));
    }
    let mut schemas: BTreeMap<&str, &Fingerprint> = BTreeMap::new();
    for (_, fp) in last.values() {
        schemas.insert(fp.root.as_str(), fp);
    }
    for fp in schemas.values() {
        save_schema(client, fp).await?;
    }
    let ids: Vec<Uuid> = last.keys().copied().collect();
    let roots: Vec<&str> = last.values().map(|(_, fp)| fp.root.as_str()).collect();
    let versions: Vec<Option<i32>> = last.values().map(|(v, _)| *v).collect();
    client
        .execute(SQL, &[&ids, &roots, &versions])
        .await
        .map_err(db)?;
    Ok(())
}

/// Records the expected schema after `version` of set `set_id` (a replay).
pub async fn save_expected(
    client: &impl GenericClient,
    set_id: &str,
    version: i32,
    fp: &Fingerprint,
) -> Result<(), DriftError> {
    const SQL: &str = "INSERT INTO control_plane.drift_expected (set_id, version, fingerprint) \
                       VALUES ($1, $2, $3) ON CONFLICT (set_id, version) DO UPDATE \
                       SET fingerprint = EXCLUDED.fingerprint, replayed_at = now()";
    save_schema(client, fp).await?;
    client
        .execute(SQL, &[&set_id, &version, &fp.root])
        .await
        .map_err(db)?;
    Ok(())
}

/// Whether set `set_id` has been replayed (its expected schemas are cached).
pub async fn replayed(client: &impl GenericClient, set_id: &str) -> Result<bool, DriftError> {
    const SQL: &str =
        "SELECT EXISTS (SELECT 1 FROM control_plane.drift_expected WHERE set_id = $1) AS ok";
    let row = client.query_one(SQL, &[&set_id]).await.map_err(db)?;
    row.try_get("ok").map_err(db)
}

/// A schema's objects by key; empty when it is not stored.
pub async fn objects(
    client: &impl GenericClient,
    fingerprint: &str,
) -> Result<BTreeMap<String, SchemaObject>, DriftError> {
    const SQL: &str = "SELECT objects FROM control_plane.drift_schemas WHERE fingerprint = $1";
    let Some(row) = client.query_opt(SQL, &[&fingerprint]).await.map_err(db)? else {
        return Ok(BTreeMap::new());
    };
    let v: Value = row.try_get("objects").map_err(db)?;
    serde_json::from_value(v).map_err(|e| corrupt("control_plane.drift_schemas.objects", e))
}

/// The expected schema of each version present in the fleet: the newest replay of that
/// version, else the fingerprint most tenants at that version share (ties: the smaller).
/// `count(*)` over the index on (version, fingerprint).
const REFERENCE_CTE: &str = concat!(
    "WITH counts AS ( \
       SELECT d.version, d.fingerprint, count(*) AS n \
       FROM control_plane.tenant_drift d JOIN ",
    tenant_table!("t"),
    " ON t.id = d.tenant_id AND t.deleted_at IS NULL \
       GROUP BY d.version, d.fingerprint), \
     majority AS ( \
       SELECT DISTINCT ON (version) version, fingerprint FROM counts \
       ORDER BY version, n DESC, fingerprint), \
     reference AS ( \
       SELECT m.version, coalesce(e.fingerprint, m.fingerprint) AS fingerprint, \
              e.fingerprint IS NOT NULL AS replay \
       FROM majority m LEFT JOIN LATERAL ( \
         SELECT x.fingerprint FROM control_plane.drift_expected x \
         WHERE x.version = m.version ORDER BY x.replayed_at DESC LIMIT 1) e ON true) "
);

/// A tenant whose drift answer changed.
#[derive(Debug, Clone)]
pub struct Changed {
    pub tenant_id: Uuid,
    pub version: Option<i32>,
    pub fingerprint: String,
    pub expected: String,
    pub drifted: bool,
    pub replay: bool,
}

/// Sets `drifted` of every tenant (or of `only`) whose answer against the current
/// reference changed, and returns those. Call it in the transaction that records their
/// events.
pub async fn reconcile(
    client: &impl GenericClient,
    only: Option<&[Uuid]>,
) -> Result<Vec<Changed>, DriftError> {
    let sql = format!(
        "{REFERENCE_CTE} \
         UPDATE control_plane.tenant_drift d SET drifted = (d.fingerprint <> r.fingerprint) \
         FROM reference r \
         WHERE r.version IS NOT DISTINCT FROM d.version \
           AND d.drifted <> (d.fingerprint <> r.fingerprint) \
           AND ($1::uuid[] IS NULL OR d.tenant_id = ANY ($1)) \
         RETURNING d.tenant_id, d.version, d.fingerprint, r.fingerprint AS expected, \
                   d.drifted, r.replay"
    );
    let rows = client.query(&sql, &[&only]).await.map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(Changed {
                tenant_id: r.try_get("tenant_id")?,
                version: r.try_get("version")?,
                fingerprint: r.try_get("fingerprint")?,
                expected: r.try_get("expected")?,
                drifted: r.try_get("drifted")?,
                replay: r.try_get("replay")?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(db)
}

/// One group of tenants sharing a version and a schema.
#[derive(Debug, Clone)]
pub struct CohortRow {
    pub version: Option<i32>,
    pub fingerprint: String,
    pub tenants: i64,
    /// The first 20 slugs, in order.
    pub slugs: Vec<String>,
    pub expected: String,
    pub replay: bool,
    pub scanned_at: DateTime<Utc>,
}

/// Every cohort of live tenants, the largest first within each version.
pub async fn cohorts(client: &impl GenericClient) -> Result<Vec<CohortRow>, DriftError> {
    let sql = format!(
        "{REFERENCE_CTE} \
         SELECT d.version, d.fingerprint, count(*) AS tenants, \
                (array_agg(t.slug ORDER BY t.slug))[1:20] AS slugs, \
                min(r.fingerprint) AS expected, bool_or(r.replay) AS replay, \
                max(d.scanned_at) AS scanned_at \
         FROM control_plane.tenant_drift d \
         JOIN {} ON t.id = d.tenant_id AND t.deleted_at IS NULL \
         JOIN reference r ON r.version IS NOT DISTINCT FROM d.version \
         GROUP BY d.version, d.fingerprint \
         ORDER BY d.version DESC NULLS LAST, count(*) DESC, d.fingerprint",
        tenant_table!("t")
    );
    let rows = client.query(&sql, &[]).await.map_err(db)?;
    rows.iter()
        .map(|r| {
            Ok(CohortRow {
                version: r.try_get("version")?,
                fingerprint: r.try_get("fingerprint")?,
                tenants: r.try_get("tenants")?,
                slugs: r.try_get("slugs")?,
                expected: r.try_get("expected")?,
                replay: r.try_get("replay")?,
                scanned_at: r.try_get("scanned_at")?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(db)
}

/// One tenant's stored drift state.
#[derive(Debug, Clone)]
pub struct TenantRow {
    pub version: Option<i32>,
    pub fingerprint: String,
    pub expected: Option<String>,
    pub replay: bool,
    pub drifted: bool,
    pub scanned_at: DateTime<Utc>,
}

/// The stored drift state of tenant `tenant_id`; None before its first fingerprint.
pub async fn tenant(
    client: &impl GenericClient,
    tenant_id: Uuid,
) -> Result<Option<TenantRow>, DriftError> {
    let sql = format!(
        "{REFERENCE_CTE} \
         SELECT d.version, d.fingerprint, r.fingerprint AS expected, \
                coalesce(r.replay, false) AS replay, d.drifted, d.scanned_at \
         FROM control_plane.tenant_drift d \
         LEFT JOIN reference r ON r.version IS NOT DISTINCT FROM d.version \
         WHERE d.tenant_id = $1"
    );
    let Some(r) = client.query_opt(&sql, &[&tenant_id]).await.map_err(db)? else {
        return Ok(None);
    };
    let row = || -> Result<TenantRow, tokio_postgres::Error> {
        Ok(TenantRow {
            version: r.try_get("version")?,
            fingerprint: r.try_get("fingerprint")?,
            expected: r.try_get("expected")?,
            replay: r.try_get("replay")?,
            drifted: r.try_get("drifted")?,
            scanned_at: r.try_get("scanned_at")?,
        })
    };
    row().map(Some).map_err(db)
}

/// The live tenants whose last fingerprint differs from the expected one, by id.
pub async fn drifted_ids(client: &impl GenericClient) -> Result<Vec<Uuid>, DriftError> {
    const SQL: &str = "SELECT tenant_id FROM control_plane.tenant_drift WHERE drifted";
    let rows = client.query(SQL, &[]).await.map_err(db)?;
    rows.iter()
        .map(|r| r.try_get("tenant_id"))
        .collect::<Result<_, _>>()
        .map_err(db)
}

/// How many live tenants are drifted (the `drover_tenants_drifted` gauge).
pub async fn drifted_count(client: &impl GenericClient) -> Result<i64, DriftError> {
    let sql = format!(
        "SELECT count(*) AS n FROM control_plane.tenant_drift d JOIN {} \
         ON t.id = d.tenant_id AND t.deleted_at IS NULL WHERE d.drifted",
        tenant_table!("t")
    );
    let row = client.query_one(&sql, &[]).await.map_err(db)?;
    row.try_get("n").map_err(db)
}

/// Drops the schemas no tenant and no replay refers to any more.
pub async fn forget_unused_schemas(client: &impl GenericClient) -> Result<u64, DriftError> {
    const SQL: &str = "DELETE FROM control_plane.drift_schemas s \
         WHERE NOT EXISTS (SELECT 1 FROM control_plane.tenant_drift d WHERE d.fingerprint = s.fingerprint) \
           AND NOT EXISTS (SELECT 1 FROM control_plane.drift_expected e WHERE e.fingerprint = s.fingerprint)";
    client.execute(SQL, &[]).await.map_err(db)
}

/// A scan asked for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Scan {
    pub id: Uuid,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// When the leader started it (null: waiting).
    #[schema(required)]
    pub started_at: Option<DateTime<Utc>>,
    /// When every tenant was read and answered (null: not yet).
    #[schema(required)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Tenants fingerprinted so far.
    pub tenants: i32,
    /// Tenants that could not be read.
    pub failed: i32,
}

const SCAN_COLS: &str = "id, requested_by, requested_at, started_at, finished_at, tenants, failed";

fn scan_row(r: &tokio_postgres::Row) -> Result<Scan, DriftError> {
    let read = || -> Result<Scan, tokio_postgres::Error> {
        Ok(Scan {
            id: r.try_get("id")?,
            requested_by: r.try_get("requested_by")?,
            requested_at: r.try_get("requested_at")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            tenants: r.try_get("tenants")?,
            failed: r.try_get("failed")?,
        })
    };
    read().map_err(db)
}

/// Asks for a scan; an unstarted one already asked for is answered instead (asking twice
/// does not scan twice).
pub async fn request_scan(pool: &Pool, requested_by: &str) -> Result<Scan, DriftError> {
    let client = pool.get().await.map_err(|e| DriftError::Db(e.into()))?;
    let pending = format!(
        "SELECT {SCAN_COLS} FROM control_plane.drift_scans \
         WHERE started_at IS NULL ORDER BY requested_at LIMIT 1"
    );
    if let Some(r) = client.query_opt(&pending, &[]).await.map_err(db)? {
        return scan_row(&r);
    }
    let insert = format!(
        "INSERT INTO control_plane.drift_scans (requested_by) VALUES ($1) RETURNING {SCAN_COLS}"
    );
    let r = client
        .query_one(&insert, &[&requested_by])
        .await
        .map_err(db)?;
    scan_row(&r)
}

/// Asks for a scan when the newest one asked for is older than `every` (the periodic
/// scan; none is added while one waits or runs).
pub async fn request_scan_if_older(
    client: &impl GenericClient,
    every: std::time::Duration,
    requested_by: &str,
) -> Result<(), DriftError> {
    const SQL: &str = "INSERT INTO control_plane.drift_scans (requested_by) \
         SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM control_plane.drift_scans \
           WHERE finished_at IS NULL OR requested_at > now() - make_interval(secs => $2))";
    client
        .execute(SQL, &[&requested_by, &every.as_secs_f64()])
        .await
        .map_err(db)?;
    Ok(())
}

/// Starts the oldest scan asked for, if any (the leader calls it).
pub async fn start_scan(client: &impl GenericClient) -> Result<Option<Scan>, DriftError> {
    let sql = format!(
        "UPDATE control_plane.drift_scans SET started_at = now() WHERE id = ( \
           SELECT id FROM control_plane.drift_scans WHERE started_at IS NULL \
           ORDER BY requested_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING {SCAN_COLS}"
    );
    client
        .query_opt(&sql, &[])
        .await
        .map_err(db)?
        .map(|r| scan_row(&r))
        .transpose()
}

/// Records a scan's progress, or its end when `finished`.
pub async fn progress_scan(
    client: &impl GenericClient,
    id: Uuid,
    tenants: i32,
    failed: i32,
    finished: bool,
) -> Result<(), DriftError> {
    const SQL: &str = "UPDATE control_plane.drift_scans SET tenants = $2, failed = $3, \
         finished_at = CASE WHEN $4 THEN now() END WHERE id = $1";
    client
        .execute(SQL, &[&id, &tenants, &failed, &finished])
        .await
        .map_err(db)?;
    Ok(())
}

/// A scan by id.
pub async fn scan(client: &impl GenericClient, id: Uuid) -> Result<Option<Scan>, DriftError> {
    let sql = format!("SELECT {SCAN_COLS} FROM control_plane.drift_scans WHERE id = $1");
    client
        .query_opt(&sql, &[&id])
        .await
        .map_err(db)?
        .map(|r| scan_row(&r))
        .transpose()
}

/// Scans started but never finished (the leader that ran them stopped): started again.
pub async fn restart_abandoned_scans(client: &impl GenericClient) -> Result<u64, DriftError> {
    const SQL: &str = "UPDATE control_plane.drift_scans SET started_at = NULL \
                       WHERE started_at IS NOT NULL AND finished_at IS NULL";
    client.execute(SQL, &[]).await.map_err(db)
}
