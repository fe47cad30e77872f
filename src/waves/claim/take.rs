//! Claim step 3: take the picked targets — lease, attempt, start — and read their tenants,
//! in the same statement as the pick ([`super::pick::PICK`]): one statement claims for
//! every locked wave, so a claim costs no round trip per wave or per target.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::lock::Locked;
use super::outcome::{Claimed, TenantNow};
use super::pick::PICK;
use crate::registry;
use crate::waves::WaveError;

/// What the replica asks of one claim.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    /// Its free slots: tenants it starts at once.
    pub free: usize,
    /// Tenants it takes at most (free slots plus what its buffer lacks).
    pub total: usize,
}

/// Leases up to `want.total` targets of the `locked` waves to `owner` for `lease`.
pub(super) async fn take(
    tx: &Transaction<'_>,
    locked: &[&Locked],
    owner: &str,
    lease: Duration,
    want: Want,
) -> Result<Vec<Claimed>, WaveError> {
    // The registry lends the tenant columns.
    let sql = take_sql();
    let ids: Vec<Uuid> = locked.iter().map(|l| l.wave.id).collect();
    let by_id: HashMap<Uuid, &Locked> = locked.iter().map(|l| (l.wave.id, *l)).collect();
    let stmt = tx.prepare_cached(sql).await?;
    let rows = tx
        .query(
            &stmt,
            &[
                &ids,
                &(want.total as i64),
                &(want.free as i64),
                &owner,
                &lease.as_secs_f64(),
            ],
        )
        .await?;
    let mut claimed: Vec<(i64, Claimed)> = Vec::with_capacity(rows.len());
    for r in &rows {
        let wave_id: Uuid = r.try_get("wave_id")?;
        let Some(l) = by_id.get(&wave_id) else {
            continue;
        };
        claimed.push((
            r.try_get("n")?,
            Claimed {
                wave_id,
                tenant_id: r.try_get("tenant_id")?,
                slug: r.try_get("slug")?,
                attempt: r.try_get("attempts")?,
                host: r.try_get("target_host")?,
                target_version: l.wave.target_version,
                run: l.run,
                source: l.source.clone(),
                tenant: TenantNow::from_row(r)?,
                start_now: r.try_get("tight")?,
            },
        ));
    }
    // Tight waves first, then in the pick's round-robin order.
    claimed.sort_by_key(|(n, c)| (!c.start_now, *n));
    Ok(claimed.into_iter().map(|(_, c)| c).collect())
}

fn take_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "{PICK}UPDATE control_plane.wave_targets w SET state = 'running', lease_owner = $4, \
             lease_expires_at = now() + make_interval(secs => $5::float8), attempts = w.attempts + 1, \
             started_at = now() FROM pick p, {} \
             WHERE w.wave_id = p.wave_id AND w.tenant_id = p.tenant_id AND t.id = w.tenant_id \
             RETURNING w.wave_id, w.tenant_id, w.slug, w.attempts, w.db_host AS target_host, p.tight, p.n, {}",
            registry::tenant_table!("t"),
            registry::tenant_now_cols!("t")
        )
    })
}
