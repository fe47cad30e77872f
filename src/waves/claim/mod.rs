//! Claiming wave targets and recording what happened to them.
//!
//! Claim → commit → work → record: no control-DB transaction is open while a tenant is
//! migrated. A claim is a lease (`lease_owner`, `lease_expires_at`) that the worker renews
//! while the tenant runs; an expired lease makes the target claimable again, and the next
//! runner re-reads the tenant's own history before doing anything.
//!
//! A claim is one transaction in typed steps, each in its own file:
//!
//! ```text
//!  lock    the wave's row (SKIP LOCKED), its columns, RunSettings and plan source ── Locked
//!          └ exhausted leases failed for good → commit, claim nothing this time
//!  accept  does this replica hold the plan's files? no → Refused(source)
//!  pick    running per host ⨝ adaptive limits; candidates under the caps ────────── [tenant]
//!  take    lease them, read their tenants ──────────────────────────────────────── [Claimed]
//! ```
//!
//! Outcomes ([`Finished`]) are recorded in batches ([`record`]): one control-DB
//! transaction for every tenant that finished since the last one, so the control DB
//! costs a few statements per batch rather than a transaction per tenant.

mod lock;
mod outcome;
mod pick;
mod record;
mod take;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use uuid::Uuid;

pub use outcome::{Claimed, Finished, TenantNow};
pub use record::{record, skip};

use super::WaveError;
use crate::sets::PlanSource;

/// What a claim of one wave came back with.
#[derive(Debug)]
pub enum Claim {
    /// The targets now held (none: nothing claimable, no free slot, or a cap reached).
    Took(Vec<Claimed>),
    /// The caller refused the plan's files (it does not hold them, or not yet): fetch
    /// the files `source` names and claim again.
    Refused(Arc<PlanSource>),
}

/// Claims up to `max` targets of the wave's current phase for `owner`, honouring the
/// wave's global and per-host concurrency across all replicas. `accept` sees where the
/// plan's files come from (and their frozen fingerprint); refusing claims nothing.
pub async fn claim(
    pool: &Pool,
    wave_id: Uuid,
    owner: &str,
    lease: Duration,
    max: usize,
    accept: impl Fn(&PlanSource) -> bool,
) -> Result<Claim, WaveError> {
    let nothing = || Ok(Claim::Took(Vec::new()));
    if max == 0 {
        return nothing();
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Some(locked) = lock::lock(&tx, wave_id).await? else {
        return nothing();
    };
    // From here the wave row is locked: every way out ends the transaction and waits for
    // the server to say so. A dropped transaction's ROLLBACK is only queued, and the
    // loop's next statement (an `advance`, on another pooled connection) would find the
    // row still locked, skip it, and leave a finished wave waiting for the next tick.
    if !locked.wave.state.claims_work() {
        tx.rollback().await?;
        return nothing();
    }
    if !accept(&locked.source) {
        tx.rollback().await?;
        return Ok(Claim::Refused(locked.source));
    }
    if lock::fail_exhausted(&tx, &locked).await? {
        // The budget must see these before anything else is claimed.
        tx.commit().await?;
        return nothing();
    }
    let mut load = pick::load(&tx, &locked).await?;
    let free = (locked.wave.max_concurrency as i64 - load.total()).clamp(0, max as i64) as usize;
    let picked = if free == 0 {
        Vec::new()
    } else {
        let candidates = pick::candidates(&tx, &locked).await?;
        pick::pick(&mut load, &candidates, free)
    };
    if picked.is_empty() {
        tx.rollback().await?;
        return nothing();
    }
    let claimed = take::take(&tx, &locked, owner, lease, &picked).await?;
    tx.commit().await?;
    Ok(Claim::Took(claimed))
}

/// Extends the lease; false when it is no longer ours.
pub async fn renew(
    pool: &Pool,
    c: &Claimed,
    owner: &str,
    lease: Duration,
) -> Result<bool, WaveError> {
    const SQL: &str = "UPDATE control_plane.wave_targets SET lease_expires_at = now() + make_interval(secs => $4::float8) \
         WHERE wave_id = $1 AND tenant_id = $2 AND lease_owner = $3 AND state = 'running'";
    let client = pool.get().await?;
    Ok(client
        .execute(
            SQL,
            &[&c.wave_id, &c.tenant_id, &owner, &lease.as_secs_f64()],
        )
        .await?
        == 1)
}

/// Gives back every lease `owner` holds (graceful shutdown), so another replica can
/// continue at once instead of waiting for the leases to expire.
pub async fn release_all(pool: &Pool, owner: &str) -> Result<u64, WaveError> {
    const SQL: &str = "UPDATE control_plane.wave_targets SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
         attempts = greatest(attempts - 1, 0), next_attempt_at = now() WHERE lease_owner = $1 AND state = 'running'";
    let client = pool.get().await?;
    Ok(client.execute(SQL, &[&owner]).await?)
}

fn registry_err(e: crate::registry::RegistryError) -> WaveError {
    match e {
        crate::registry::RegistryError::Db(d) => WaveError::Db(d),
        other => WaveError::Db(crate::db::DbError::Internal(other.to_string())),
    }
}
