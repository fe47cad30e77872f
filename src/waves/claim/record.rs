//! Claim step 4: record what became of claimed targets. Every tenant that finished since
//! the last batch is written in one control-DB transaction, fenced by the lease owner
//! (a target another runner took over is left to it). Up-to-date tenants whose registry
//! row already agrees are written by one statement for the whole batch.

use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use serde_json::{json, Value};
use uuid::Uuid;

use super::outcome::{Claimed, Finished};
use super::registry_err;
use crate::migrate::{MigrateError, RunOutcome};
use crate::registry::{self, record_event, Actor};
use crate::waves::{redact, WaveError};

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
    crate::waves::host_limits::adjust(tx, batch).await?;
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
            record_event(&**tx, c.tenant_id, "migrated", actor, payload)
                .await
                .map_err(registry_err)?;
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
    // The target keeps the server's words (operators read them); events, webhooks and the
    // tenant's issue carry only what may leave drover.
    let public = err.public();
    // Who held the lock a lock timeout waited for (docs/design.md, README "Lock timeouts"); nothing for other errors.
    let blockers: Option<Value> = matches!(err, MigrateError::LockTimeout { .. })
        .then(|| json!({ "blockers": err.blockers() }));
    // Beside them, the form viewers read (`waves::redact`).
    let detail = Some(redact::with_public_error(blockers, err));
    let retry = err.is_retryable() && c.attempt < c.run.max_attempts;
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
            let mut payload = json!({ "wave_id": c.wave_id, "kind": kind, "error": public, "attempts": c.attempt });
            if matches!(err, MigrateError::LockTimeout { .. }) {
                payload["blockers"] = json!(err.blockers());
            }
            record_event(&**tx, c.tenant_id, "error", actor, payload)
                .await
                .map_err(registry_err)?;
            if let MigrateError::Drift { version, .. }
            | MigrateError::NeedsAttention { version, .. } = err
            {
                let issue = json!({ "kind": kind, "version": version, "message": public, "wave_id": c.wave_id });
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
