//! Claim step 3: take the picked targets — lease, attempt, start — and read their tenants
//! in the same statement, so a claim costs no extra round trip per target.

use std::time::Duration;

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::lock::Locked;
use super::outcome::{Claimed, TenantNow};
use crate::registry;
use crate::waves::WaveError;

/// Leases `picked` to `owner` for `lease` and returns them as [`Claimed`] targets.
pub(super) async fn take(
    tx: &Transaction<'_>,
    locked: &Locked,
    owner: &str,
    lease: Duration,
    picked: &[Uuid],
) -> Result<Vec<Claimed>, WaveError> {
    // The registry lends the tenant columns.
    const TAKE: &str = concat!(
        "UPDATE control_plane.wave_targets w SET state = 'running', lease_owner = $2, \
         lease_expires_at = now() + make_interval(secs => $3::float8), attempts = attempts + 1, started_at = now() \
         FROM ",
        registry::tenant_table!("t"),
        " WHERE w.wave_id = $1 AND w.tenant_id = ANY($4) AND t.id = w.tenant_id \
         RETURNING w.tenant_id, w.slug, w.attempts, w.db_host AS target_host, ",
        registry::tenant_now_cols!("t")
    );
    let wave_id = locked.wave.id;
    let stmt = tx.prepare_cached(TAKE).await?;
    let rows = tx
        .query(&stmt, &[&wave_id, &owner, &lease.as_secs_f64(), &picked])
        .await?;
    let claimed = rows
        .iter()
        .map(|r| {
            Ok(Claimed {
                wave_id,
                tenant_id: r.try_get("tenant_id")?,
                slug: r.try_get("slug")?,
                attempt: r.try_get("attempts")?,
                host: r.try_get("target_host")?,
                target_version: locked.wave.target_version,
                run: locked.run,
                source: locked.source.clone(),
                tenant: TenantNow::from_row(r)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(claimed)
}
