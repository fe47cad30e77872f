//! Claiming wave targets and recording what happened to them.
//!
//! Claim → commit → work → record: no control-DB transaction is open while a tenant is
//! migrated. A claim is a lease (`lease_owner`, `lease_expires_at`) that the worker renews
//! while the tenant runs; an expired lease makes the target claimable again, and the next
//! runner re-reads the tenant's own history before doing anything.
//!
//! A claim is one transaction in typed steps, each in its own file, for every active wave
//! of the replica at once:
//!
//! ```text
//!  lock    the rows of the waves that take claims (SKIP LOCKED): columns, RunSettings,
//!          plan source ──────────────────────────────────────────────────────── [Locked]
//!  accept  does this replica hold each plan's files? no → Refused(source), not claimed
//!  exhaust leases that ran out with no attempts left → failed (the budget counts them)
//!  pick +  one statement: budget, caps, host limits, candidates, leases, tenants
//!  take    (see `pick`) ────────────────────────────────────────────────────── [Claimed]
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
pub use take::Want;

use super::WaveError;
use crate::sets::PlanSource;

/// What one claim came back with.
#[derive(Debug, Default)]
pub struct Claims {
    /// The targets now held, those to start at once first (none: nothing claimable, no
    /// room, or a cap or the failure budget reached).
    pub took: Vec<Claimed>,
    /// Waves whose plan files the caller refused (it does not hold them, or not yet):
    /// fetch the files each source names and claim again.
    pub refused: Vec<(Uuid, Arc<PlanSource>)>,
}

/// Claims up to `want.total` targets of the current phases of `waves` for `owner`,
/// honouring each wave's failure budget and its global and per-host concurrency across
/// all replicas. `accept` sees where each plan's files come from (and their frozen
/// fingerprint); a wave it refuses is not claimed from.
pub async fn claim(
    pool: &Pool,
    waves: &[Uuid],
    owner: &str,
    lease: Duration,
    want: Want,
    accept: impl Fn(Uuid, &PlanSource) -> bool,
) -> Result<Claims, WaveError> {
    let mut claims = Claims::default();
    if want.total == 0 || waves.is_empty() {
        return Ok(claims);
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let locked = lock::lock_many(&tx, waves).await?;
    // From here wave rows are locked: every way out ends the transaction and waits for
    // the server to say so. A dropped transaction's ROLLBACK is only queued, and the
    // loop's next statement (an `advance`, on another pooled connection) would find the
    // row still locked, skip it, and leave a finished wave waiting for the next tick.
    let mut accepted = Vec::with_capacity(locked.len());
    for l in &locked {
        if accept(l.wave.id, &l.source) {
            accepted.push(l);
        } else {
            claims.refused.push((l.wave.id, l.source.clone()));
        }
    }
    if accepted.is_empty() {
        tx.rollback().await?;
        return Ok(claims);
    }
    lock::fail_exhausted(&tx, &accepted).await?;
    claims.took = take::take(&tx, &accepted, owner, lease, want).await?;
    tx.commit().await?;
    Ok(claims)
}

/// Extends the lease; false when it is no longer ours.
pub async fn renew(
    pool: &Pool,
    c: &Claimed,
    owner: &str,
    lease: Duration,
) -> Result<bool, WaveError> {
    const SQL: &str = "UPDATE control_plane.wave_targets SET lease_expires_at = now() + make_interval(secs => $4::float8) \
         WHERE wave_id = $1 AND tenant_id = $2 AND lease_owner = $3 AND attempts = $5 AND state = 'running'";
    let client = pool.get().await?;
    Ok(client
        .execute(
            SQL,
            &[
                &c.wave_id,
                &c.tenant_id,
                &owner,
                &lease.as_secs_f64(),
                &c.attempt,
            ],
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

/// Gives back the leases of claimed targets this replica will not start (its buffer, on
/// shutdown or when their wave stopped), as if never claimed.
pub async fn release(pool: &Pool, owner: &str, held: &[&Claimed]) -> Result<u64, WaveError> {
    const SQL: &str =
        "UPDATE control_plane.wave_targets w SET state = 'pending', lease_owner = NULL, \
         lease_expires_at = NULL, attempts = greatest(w.attempts - 1, 0), next_attempt_at = now() \
         FROM unnest($2::uuid[], $3::uuid[], $4::int4[]) AS d(wave_id, tenant_id, attempt) \
         WHERE w.wave_id = d.wave_id AND w.tenant_id = d.tenant_id AND w.lease_owner = $1 \
           AND w.attempts = d.attempt AND w.state = 'running'";
    if held.is_empty() {
        return Ok(0);
    }
    let (waves, tenants, attempts) = keys(held);
    let client = pool.get().await?;
    Ok(client
        .execute(SQL, &[&owner, &waves, &tenants, &attempts])
        .await?)
}

/// Extends the leases of targets claimed but not running (buffered, or finished and
/// waiting to be recorded) in one statement.
pub async fn renew_held(
    pool: &Pool,
    owner: &str,
    held: &[&Claimed],
    lease: Duration,
) -> Result<u64, WaveError> {
    const SQL: &str = "UPDATE control_plane.wave_targets w \
         SET lease_expires_at = now() + make_interval(secs => $5::float8) \
         FROM unnest($2::uuid[], $3::uuid[], $4::int4[]) AS d(wave_id, tenant_id, attempt) \
         WHERE w.wave_id = d.wave_id AND w.tenant_id = d.tenant_id AND w.lease_owner = $1 \
           AND w.attempts = d.attempt AND w.state = 'running'";
    if held.is_empty() {
        return Ok(0);
    }
    let (waves, tenants, attempts) = keys(held);
    let client = pool.get().await?;
    Ok(client
        .execute(
            SQL,
            &[&owner, &waves, &tenants, &attempts, &lease.as_secs_f64()],
        )
        .await?)
}

fn keys(held: &[&Claimed]) -> (Vec<Uuid>, Vec<Uuid>, Vec<i32>) {
    (
        held.iter().map(|c| c.wave_id).collect(),
        held.iter().map(|c| c.tenant_id).collect(),
        held.iter().map(|c| c.attempt).collect(),
    )
}

fn registry_err(e: crate::registry::RegistryError) -> WaveError {
    match e {
        crate::registry::RegistryError::Db(d) => WaveError::Db(d),
        other => WaveError::Db(crate::db::DbError::Internal(other.to_string())),
    }
}
