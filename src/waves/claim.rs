//! Claiming wave targets and recording what happened to them.
//!
//! Claim → commit → work → record: no control-DB transaction is open while a tenant is
//! migrated. A claim is a lease (`lease_owner`, `lease_expires_at`) that the worker renews
//! while the tenant runs; an expired lease makes the target claimable again, and the next
//! runner re-reads the tenant's own history before doing anything.
//!
//! Outcomes are recorded in batches (`record`): one control-DB transaction for every
//! tenant that finished since the last one, so the control DB costs a few statements per
//! batch rather than a transaction per tenant. Up-to-date tenants whose registry row
//! already agrees are written by one statement for the whole batch.

use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use serde_json::{json, Value};
use uuid::Uuid;

use super::WaveError;
use crate::migrate::{LockRetries, MigrateError, RunOutcome};
use crate::registry::{self, record_event, Actor};
use crate::resolve::TenantDb;

/// A target this replica now holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub wave_id: Uuid,
    pub tenant_id: Uuid,
    pub slug: String,
    /// The database host the plan put it on (the key of the per-host limits).
    pub host: String,
    /// Attempts so far, including this one.
    pub attempt: i32,
    pub target_version: i32,
    pub lock_timeout_ms: i32,
    pub statement_timeout_ms: i32,
    pub max_attempts: i32,
    /// A dry-run wave: run and roll back, record nothing on the tenant.
    pub dry_run: bool,
    /// How lock timeouts are retried within one attempt.
    pub lock_retries: LockRetries,
    /// The tenant as it is now (read in the claim, so the worker needs no extra query).
    pub tenant: TenantNow,
}

/// A claimed tenant's current status and connection parameters.
#[derive(Debug, Clone)]
pub struct TenantNow {
    /// `None` when the tenant was deleted since the plan was made.
    pub status: Option<String>,
    /// Where its database is.
    pub db: TenantDb,
    /// What the registry records as the tenant's version, and whether it has an open issue.
    pub schema_version: Option<i32>,
    pub has_issue: bool,
}

impl TenantNow {
    /// Reads `status` (NULL once deleted), `schema_version`, `has_issue` and the
    /// [`TenantDb`] columns of `row`, by name.
    pub fn from_row(row: &tokio_postgres::Row) -> Result<TenantNow, tokio_postgres::Error> {
        Ok(TenantNow {
            status: row.try_get("status")?,
            db: TenantDb::from_row(row)?,
            schema_version: row.try_get("schema_version")?,
            has_issue: row.try_get("has_issue")?,
        })
    }
}

/// Claims up to `max` targets of the wave's current phase for `owner`, honouring the
/// wave's global and per-host concurrency across all replicas. `accept_plan` sees the
/// wave's frozen migration fingerprint; returning false claims nothing.
pub async fn claim(
    pool: &Pool,
    wave_id: Uuid,
    owner: &str,
    lease: Duration,
    max: usize,
    accept_plan: impl Fn(&Value) -> bool,
) -> Result<Vec<Claimed>, WaveError> {
    // The wave row lock serializes claimers of one wave, which is what makes the
    // concurrency caps hold across replicas; SKIP LOCKED means nobody waits for it.
    // The plan's fingerprint and retry schedule are read as projections: the whole plan
    // (request, lint findings) is not worth sending on every claim.
    const WAVE: &str = concat!(
        "SELECT ",
        super::row::wave_cols!(),
        ", plan->'migrations' AS migrations, plan->'settings'->'lock_retries' AS lock_retries \
         FROM control_plane.waves WHERE id = $1 FOR UPDATE SKIP LOCKED"
    );
    const CANDIDATES: &str = "SELECT tenant_id, slug, db_host FROM control_plane.wave_targets \
         WHERE wave_id = $1 AND phase <= $2 \
           AND ((state = 'pending' AND next_attempt_at <= now()) OR (state = 'running' AND lease_expires_at <= now())) \
         ORDER BY phase, slug LIMIT $3 FOR UPDATE SKIP LOCKED";
    // One statement takes the targets and reads their tenants (the registry lends the
    // tenant columns), so a claim costs no extra round trip per batch.
    const TAKE: &str = concat!(
        "UPDATE control_plane.wave_targets w SET state = 'running', lease_owner = $2, \
         lease_expires_at = now() + make_interval(secs => $3::float8), attempts = attempts + 1, started_at = now() \
         FROM ",
        registry::tenant_table!("t"),
        " WHERE w.wave_id = $1 AND w.tenant_id = ANY($4) AND t.id = w.tenant_id \
         RETURNING w.tenant_id, w.slug, w.attempts, w.db_host AS target_host, ",
        registry::tenant_now_cols!("t")
    );
    // A target whose lease ran out with no attempts left: its runner died every time
    // (e.g. the tenant's migration keeps getting the replica OOM-killed). Fail it rather
    // than hand it to the next replica forever.
    const EXHAUSTED: &str = "UPDATE control_plane.wave_targets SET state = 'failed', lease_owner = NULL, \
         lease_expires_at = NULL, finished_at = now(), error_kind = 'retryable', \
         error = 'the replica migrating this tenant stopped ' || attempts || ' times (lease expired); not retried again' \
         WHERE wave_id = $1 AND state = 'running' AND lease_expires_at <= now() AND attempts >= $2 \
         RETURNING tenant_id, error";
    if max == 0 {
        return Ok(Vec::new());
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Every statement is prepared once per pooled connection: a claim runs for every
    // few tenants, and an unprepared statement costs a second round trip.
    let wave_stmt = tx.prepare_cached(WAVE).await?;
    let Some(w) = tx.query_opt(&wave_stmt, &[&wave_id]).await? else {
        return Ok(Vec::new());
    };
    // From here the wave row is locked: every way out ends the transaction and waits for
    // the server to say so. A dropped transaction's ROLLBACK is only queued, and the
    // loop's next statement (an `advance`, on another pooled connection) would find the
    // row still locked, skip it, and leave a finished wave waiting for the next tick.
    let wave = super::Wave::from_row(&w)?;
    let claims_work = wave.state.claims_work();
    let plan: Option<Value> = w.try_get("migrations")?;
    if !claims_work || !accept_plan(&plan.unwrap_or(Value::Null)) {
        tx.rollback().await?;
        return Ok(Vec::new());
    }
    let (phase, max_conc, max_host) = (wave.current_phase, wave.max_concurrency, wave.max_per_host);
    let max_attempts = wave.max_attempts;
    let exhausted_stmt = tx.prepare_cached(EXHAUSTED).await?;
    let exhausted = tx
        .query(&exhausted_stmt, &[&wave_id, &max_attempts])
        .await?;
    let dry_run = wave.dry_run;
    if !exhausted.is_empty() {
        let actor = Actor::new("drover")?;
        // A dry run writes nothing about the tenant, not even its failure.
        for r in exhausted.iter().filter(|_| !dry_run) {
            let (tenant, error): (Uuid, String) = (r.try_get("tenant_id")?, r.try_get("error")?);
            let payload = json!({ "wave_id": wave_id, "kind": "retryable", "error": error });
            record_event(&*tx, tenant, "error", &actor, payload).await?;
        }
        // The budget must see these before anything else is claimed.
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let mut per_host: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    // A host's cap is its adaptive limit when congestion lowered it, else max_per_host.
    let mut caps: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let running_stmt = tx
        .prepare_cached(super::host_limits::RUNNING_AND_LIMITS)
        .await?;
    for r in tx.query(&running_stmt, &[&wave_id]).await? {
        let host: String = r.try_get("db_host")?;
        if let Some(limit) = r.try_get::<_, Option<i32>>("current_limit")? {
            caps.insert(host.clone(), limit.min(max_host) as i64);
        }
        per_host.insert(host, r.try_get("running")?);
    }
    let running: i64 = per_host.values().sum();
    let mut free = (max_conc as i64 - running).clamp(0, max as i64) as usize;
    if free == 0 {
        tx.rollback().await?;
        return Ok(Vec::new());
    }
    let mut picked = Vec::new();
    let candidates = tx.prepare_cached(CANDIDATES).await?;
    for r in tx
        .query(&candidates, &[&wave_id, &phase, &(max_conc as i64 * 4)])
        .await?
    {
        let host: String = r.try_get("db_host")?;
        let cap = caps.get(&host).copied().unwrap_or(max_host as i64);
        let on_host = per_host.entry(host).or_default();
        if *on_host >= cap {
            continue;
        }
        *on_host += 1;
        picked.push(r.try_get::<_, Uuid>("tenant_id")?);
        free -= 1;
        if free == 0 {
            break;
        }
    }
    if picked.is_empty() {
        tx.rollback().await?;
        return Ok(Vec::new());
    }
    let take = tx.prepare_cached(TAKE).await?;
    let rows = tx
        .query(&take, &[&wave_id, &owner, &lease.as_secs_f64(), &picked])
        .await?;
    tx.commit().await?;
    // Waves planned before `lock_retries` existed get the default schedule.
    let lock_retries: LockRetries = w
        .try_get::<_, Option<Value>>("lock_retries")?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let claimed = rows
        .iter()
        .map(|r| {
            Ok(Claimed {
                wave_id,
                tenant_id: r.try_get("tenant_id")?,
                slug: r.try_get("slug")?,
                attempt: r.try_get("attempts")?,
                host: r.try_get("target_host")?,
                target_version: wave.target_version,
                lock_timeout_ms: wave.lock_timeout_ms,
                statement_timeout_ms: wave.statement_timeout_ms,
                max_attempts,
                dry_run,
                lock_retries,
                tenant: TenantNow::from_row(r)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(claimed)
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

/// What became of a claimed target, waiting to be recorded by `record`.
pub enum Finished {
    Succeeded {
        claim: Claimed,
        out: RunOutcome,
        duration_ms: i64,
    },
    Failed {
        claim: Claimed,
        error: MigrateError,
        backoff: Duration,
    },
    Skipped {
        claim: Claimed,
        reason: String,
    },
}

impl Finished {
    fn claim(&self) -> &Claimed {
        match self {
            Finished::Succeeded { claim, .. }
            | Finished::Failed { claim, .. }
            | Finished::Skipped { claim, .. } => claim,
        }
    }

    /// Up to date and the registry already agrees: only the target row changes.
    fn only_target(&self) -> bool {
        matches!(self, Finished::Succeeded { claim, out, .. }
            if out.applied.is_empty() && claim.tenant.schema_version == out.to && !claim.tenant.has_issue)
    }
}

/// Records finished targets, all in one control-DB transaction; returns how many failed
/// for good (the caller checks the failure budget before it claims more). Should the
/// batch fail, each is recorded on its own, so one bad outcome cannot lose the others.
pub async fn record(
    pool: &Pool,
    owner: &str,
    actor: &Actor,
    batch: &[Finished],
) -> Result<usize, WaveError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let together = async {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let failed = record_in(&tx, owner, actor, batch).await?;
        tx.commit().await?;
        Ok::<_, WaveError>(failed)
    };
    match together.await {
        Ok(failed) => Ok(failed),
        Err(e) if batch.len() == 1 => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, tenants = batch.len(), "recording a batch of outcomes failed; recording them one by one");
            let mut failed = 0;
            let mut last = Ok(());
            for one in batch {
                match Box::pin(record(pool, owner, actor, std::slice::from_ref(one))).await {
                    Ok(n) => failed += n,
                    Err(e) => {
                        tracing::error!(error = %e, slug = %one.claim().slug, "could not record the outcome in the control DB");
                        last = Err(e);
                    }
                }
            }
            last.map(|()| failed)
        }
    }
}

async fn record_in(
    tx: &Transaction<'_>,
    owner: &str,
    actor: &Actor,
    batch: &[Finished],
) -> Result<usize, WaveError> {
    // Up-to-date tenants of every wave in the batch, in one statement.
    const TARGETS: &str = "UPDATE control_plane.wave_targets w SET state = 'succeeded', from_version = d.from_version, \
         to_version = d.to_version, finished_at = now(), duration_ms = d.duration_ms, lease_owner = NULL, \
         lease_expires_at = NULL, error = NULL, error_kind = NULL, detail = NULL \
         FROM unnest($2::uuid[], $3::uuid[], $4::int4[], $5::int4[], $6::int8[]) \
              AS d(wave_id, tenant_id, from_version, to_version, duration_ms) \
         WHERE w.wave_id = d.wave_id AND w.tenant_id = d.tenant_id AND w.lease_owner = $1 AND w.state = 'running'";
    let quick: Vec<(&Claimed, &RunOutcome, i64)> = batch
        .iter()
        .filter(|f| f.only_target())
        .filter_map(|f| match f {
            Finished::Succeeded {
                claim,
                out,
                duration_ms,
            } => Some((claim, out, *duration_ms)),
            _ => None,
        })
        .collect();
    if !quick.is_empty() {
        let waves: Vec<Uuid> = quick.iter().map(|q| q.0.wave_id).collect();
        let tenants: Vec<Uuid> = quick.iter().map(|q| q.0.tenant_id).collect();
        let from: Vec<Option<i32>> = quick.iter().map(|q| q.1.from).collect();
        let to: Vec<Option<i32>> = quick.iter().map(|q| q.1.to).collect();
        let ms: Vec<i64> = quick.iter().map(|q| q.2).collect();
        let stmt = tx.prepare_cached(TARGETS).await?;
        tx.execute(&stmt, &[&owner, &waves, &tenants, &from, &to, &ms])
            .await?;
    }
    let mut failed = 0;
    for f in batch.iter().filter(|f| !f.only_target()) {
        match f {
            Finished::Succeeded {
                claim,
                out,
                duration_ms,
            } => succeed_in(tx, claim, owner, out, *duration_ms, actor).await?,
            Finished::Failed {
                claim,
                error,
                backoff,
            } => {
                if !fail_in(tx, claim, owner, error, *backoff, actor).await? {
                    failed += 1;
                }
            }
            Finished::Skipped { claim, reason } => skip_in(tx, claim, owner, reason).await?,
        }
    }
    super::host_limits::adjust(tx, batch).await?;
    Ok(failed)
}

/// Records a success: the tenant's `schema_version`, a `migrated` event when something
/// changed, and the target. The tenant update and event are written even if the lease was
/// lost meanwhile: the work happened, and the replica that took the target over will find
/// the tenant at the target and write no second event.
async fn succeed_in(
    tx: &Transaction<'_>,
    c: &Claimed,
    owner: &str,
    out: &RunOutcome,
    duration_ms: i64,
    actor: &Actor,
) -> Result<(), WaveError> {
    const TARGET: &str = "UPDATE control_plane.wave_targets SET state = 'succeeded', from_version = $4, to_version = $5, \
         finished_at = now(), duration_ms = $6, lease_owner = NULL, lease_expires_at = NULL, error = NULL, error_kind = NULL, \
         detail = NULL WHERE wave_id = $1 AND tenant_id = $2 AND lease_owner = $3 AND state = 'running'";
    let target_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &c.wave_id,
        &c.tenant_id,
        &owner,
        &out.from,
        &out.to,
        &duration_ms,
    ];
    let target = tx.prepare_cached(TARGET).await?;
    let owned = tx.execute(&target, &target_params).await?;
    let recorded = registry::queries::lock_schema_version(tx, c.tenant_id).await?;
    // Without the lease, another runner owns this tenant now and may have recorded a
    // newer version already: only move the registry forward, never back, and only
    // write an event when it actually moves (so the tenant never gets two).
    let write = if owned == 1 {
        true
    } else {
        recorded.is_none_or(|r| out.to.is_some_and(|to| to > r))
    };
    if write {
        registry::queries::set_schema_version(tx, c.tenant_id, out.to).await?;
        let moved = recorded != out.to;
        if (owned == 1 && !out.applied.is_empty()) || moved {
            // When nothing was applied here but the registry lagged (a crash between the
            // tenant's commit and ours), `from` is what the registry believed.
            let from = if out.applied.is_empty() || owned == 0 {
                recorded
            } else {
                out.from
            };
            let payload = json!({
                "from": from, "to": out.to, "wave_id": c.wave_id, "duration_ms": duration_ms, "applied": out.applied,
            });
            record_event(&**tx, c.tenant_id, "migrated", actor, payload).await?;
        }
    }
    if owned == 0 {
        tracing::warn!(slug = %c.slug, "lease lost while migrating; the tenant's new version is recorded, the target is left to its new owner");
    }
    Ok(())
}

/// Records a failure: back to pending after a backoff when retryable and attempts remain,
/// otherwise failed with an `error` event (and the tenant flagged for drift or attention).
async fn fail_in(
    tx: &Transaction<'_>,
    c: &Claimed,
    owner: &str,
    err: &MigrateError,
    backoff: Duration,
    actor: &Actor,
) -> Result<bool, WaveError> {
    const RETRY: &str = "UPDATE control_plane.wave_targets SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
         next_attempt_at = now() + make_interval(secs => $4::float8), error = $5, error_kind = $6, detail = $7 \
         WHERE wave_id = $1 AND tenant_id = $2 AND lease_owner = $3 AND state = 'running'";
    const FAILED: &str = "UPDATE control_plane.wave_targets SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL, \
         finished_at = now(), error = $4, error_kind = $5, detail = $6 \
         WHERE wave_id = $1 AND tenant_id = $2 AND lease_owner = $3 AND state = 'running'";
    let kind = err.kind().as_str();
    let message = err.to_string();
    // Who held the lock a lock timeout waited for
    // (README.md#lock-timeouts-retries-and-who-held-the-lock); nothing for other errors.
    let detail: Option<Value> = matches!(err, MigrateError::LockTimeout { .. })
        .then(|| json!({ "blockers": err.blockers() }));
    let retry = err.is_retryable() && c.attempt < c.max_attempts;
    if retry {
        tx.execute(
            RETRY,
            &[
                &c.wave_id,
                &c.tenant_id,
                &owner,
                &backoff.as_secs_f64(),
                &message,
                &kind,
                &detail,
            ],
        )
        .await?;
    } else {
        let owned = tx
            .execute(
                FAILED,
                &[&c.wave_id, &c.tenant_id, &owner, &message, &kind, &detail],
            )
            .await?;
        if owned == 1 {
            let mut payload = json!({ "wave_id": c.wave_id, "kind": kind, "error": message, "attempts": c.attempt });
            if let Some(d) = &detail {
                payload["blockers"] = d["blockers"].clone();
            }
            record_event(&**tx, c.tenant_id, "error", actor, payload).await?;
            if let MigrateError::Drift { version, .. }
            | MigrateError::NeedsAttention { version, .. } = err
            {
                let issue = json!({ "kind": kind, "version": version, "message": message, "wave_id": c.wave_id });
                registry::queries::set_migration_issue(&**tx, c.tenant_id, &issue).await?;
            }
        }
    }
    Ok(retry)
}

const SKIP: &str = "UPDATE control_plane.wave_targets SET state = 'skipped', error = $4, finished_at = now(), \
     lease_owner = NULL, lease_expires_at = NULL WHERE wave_id = $1 AND tenant_id = $2 AND lease_owner = $3";

/// Marks a target skipped (the tenant is provisioning, deleting or deleted).
pub async fn skip(pool: &Pool, c: &Claimed, owner: &str, reason: &str) -> Result<(), WaveError> {
    let client = pool.get().await?;
    client
        .execute(SKIP, &[&c.wave_id, &c.tenant_id, &owner, &reason])
        .await?;
    Ok(())
}

async fn skip_in(
    tx: &Transaction<'_>,
    c: &Claimed,
    owner: &str,
    reason: &str,
) -> Result<(), WaveError> {
    tx.execute(SKIP, &[&c.wave_id, &c.tenant_id, &owner, &reason])
        .await?;
    Ok(())
}

/// Gives back every lease `owner` holds (graceful shutdown), so another replica can
/// continue at once instead of waiting for the leases to expire.
pub async fn release_all(pool: &Pool, owner: &str) -> Result<u64, WaveError> {
    const SQL: &str = "UPDATE control_plane.wave_targets SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
         attempts = greatest(attempts - 1, 0), next_attempt_at = now() WHERE lease_owner = $1 AND state = 'running'";
    let client = pool.get().await?;
    Ok(client.execute(SQL, &[&owner]).await?)
}
