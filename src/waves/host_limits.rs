//! Adaptive per-host concurrency (AIMD): within a wave's `max_per_host`, a database host's
//! limit halves when its tenants report congestion (lock timeouts, refused connections,
//! too many connections) and grows by one after as many clean finishes as the limit.
//!
//! ```text
//!  record (one batch of outcomes)          claim (`claim::pick`, wave rows locked)
//!   per (wave, host): ok, congested          running per host ⨝ wave_host_limits
//!    congested > 0 → limit = max(limit/2, 1)  cap = min(max_per_host, limit)
//!    else clean += ok; clean ≥ limit →
//!         limit = min(limit+1, max_per_host)
//! ```
//!
//! The limit lives in the control DB (`control_plane.wave_host_limits`) because every
//! replica claims: a limit in one replica's memory would not bind the others. A host
//! without a row runs at `max_per_host`; its row appears with its first congestion, so a
//! healthy wave never writes one. A batch halves a host once however many of its tenants
//! were congested: they all saw the same overload.

use std::collections::BTreeMap;

use deadpool_postgres::Transaction;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::claim::Finished;
use super::WaveError;

/// One host's limit, as `GET /v1/waves/{id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostLimit {
    pub host: String,
    /// Tenants this host may run at once now.
    pub limit: i32,
    /// The wave's `max_per_host`.
    pub max: i32,
    /// How many times congestion halved it.
    pub lowered: i32,
}

/// Clean finishes and congested failures of one batch, per (wave, host).
fn tally(batch: &[Finished]) -> BTreeMap<(Uuid, &str), (i32, i32)> {
    let mut by_host: BTreeMap<(Uuid, &str), (i32, i32)> = BTreeMap::new();
    for f in batch {
        let (claim, ok, bad) = match f {
            Finished::Succeeded { claim, .. } => (claim, 1, 0),
            Finished::Failed { claim, error, .. } if error.is_congestion() => (claim, 0, 1),
            _ => continue,
        };
        let e = by_host
            .entry((claim.wave_id, claim.host.as_str()))
            .or_default();
        e.0 += ok;
        e.1 += bad;
    }
    by_host
}

/// Moves the limits of the hosts in `batch`, in the recording transaction.
pub async fn adjust(tx: &Transaction<'_>, batch: &[Finished]) -> Result<(), WaveError> {
    // One statement: congested hosts are halved (their row created at max/2 when new);
    // clean ones below their wave's max count towards the next step up. The two parts
    // touch disjoint rows (bad > 0 vs bad = 0), so neither needs to see the other's write.
    const ADJUST: &str = "WITH d AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::int4[], $4::int4[]) \
             AS d(wave_id, db_host, ok, bad)), \
         halved AS (INSERT INTO control_plane.wave_host_limits AS l (wave_id, db_host, current_limit, lowered) \
             SELECT d.wave_id, d.db_host, greatest(w.max_per_host / 2, 1), 1 \
             FROM d JOIN control_plane.waves w ON w.id = d.wave_id WHERE d.bad > 0 \
             ON CONFLICT (wave_id, db_host) DO UPDATE SET current_limit = greatest(l.current_limit / 2, 1), \
                 clean = 0, lowered = l.lowered + 1, updated_at = now()) \
         UPDATE control_plane.wave_host_limits l SET \
             current_limit = CASE WHEN l.clean + d.ok >= l.current_limit \
                 THEN least(l.current_limit + 1, w.max_per_host) ELSE l.current_limit END, \
             clean = CASE WHEN l.clean + d.ok >= l.current_limit THEN 0 ELSE l.clean + d.ok END, \
             updated_at = now() \
         FROM d JOIN control_plane.waves w ON w.id = d.wave_id \
         WHERE l.wave_id = d.wave_id AND l.db_host = d.db_host AND d.bad = 0 AND d.ok > 0 \
           AND l.current_limit < w.max_per_host";
    let tallied = tally(batch);
    if tallied.is_empty() {
        return Ok(());
    }
    let waves: Vec<Uuid> = tallied.keys().map(|k| k.0).collect();
    let hosts: Vec<&str> = tallied.keys().map(|k| k.1).collect();
    let ok: Vec<i32> = tallied.values().map(|v| v.0).collect();
    let bad: Vec<i32> = tallied.values().map(|v| v.1).collect();
    let stmt = tx.prepare_cached(ADJUST).await?;
    tx.execute(&stmt, &[&waves, &hosts, &ok, &bad]).await?;
    Ok(())
}

/// Every host of a wave with its limit (the first 1,000, by name).
pub async fn view(
    client: &impl tokio_postgres::GenericClient,
    wave_id: Uuid,
) -> Result<Vec<HostLimit>, WaveError> {
    const SQL: &str =
        "SELECT t.db_host AS host, coalesce(l.current_limit, w.max_per_host) AS current_limit, \
             w.max_per_host, coalesce(l.lowered, 0) AS lowered \
         FROM (SELECT DISTINCT db_host FROM control_plane.wave_targets WHERE wave_id = $1) t \
         JOIN control_plane.waves w ON w.id = $1 \
         LEFT JOIN control_plane.wave_host_limits l ON l.wave_id = $1 AND l.db_host = t.db_host \
         ORDER BY 1 LIMIT 1000";
    client
        .query(SQL, &[&wave_id])
        .await?
        .iter()
        .map(|r| {
            Ok(HostLimit {
                host: r.try_get("host")?,
                limit: r.try_get("current_limit")?,
                max: r.try_get("max_per_host")?,
                lowered: r.try_get("lowered")?,
            })
        })
        .collect()
}

/// A host's lowest limit over the waves not completed or aborted (for `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowestLimit {
    pub host: String,
    pub limit: i32,
}

/// Every host with a lowered limit in an unfinished wave, with its lowest limit. A host
/// without a row runs at its wave's `max_per_host` and is left out.
pub async fn lowest_open(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<LowestLimit>, tokio_postgres::Error> {
    const SQL: &str =
        "SELECT l.db_host, min(l.current_limit) AS current_limit FROM control_plane.wave_host_limits l \
         JOIN control_plane.waves w ON w.id = l.wave_id \
         WHERE w.state NOT IN ('completed', 'aborted') GROUP BY 1";
    client
        .query(SQL, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(LowestLimit {
                host: r.try_get("db_host")?,
                limit: r.try_get("current_limit")?,
            })
        })
        .collect()
}
