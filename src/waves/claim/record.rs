//! Claim step 4: record what became of claimed targets. A completion batch — every tenant
//! that finished since the last one, of any wave — is written in one control-DB
//! transaction by a fixed number of statements over arrays (`unnest`), whatever its size:
//!
//! ```text
//!  successes   targets → succeeded            fenced: lease_owner and attempt
//!              tenants locked (id order) → schema_version, forward only when not ours
//!  retries     targets → pending after their backoff          fenced
//!  failures    targets → failed; issues (drift, attention)    fenced
//!  skips       targets → skipped                              fenced
//!  events      migrated / error, one INSERT (the outbox rows come with them)
//!  host limits one statement (`host_limits::adjust`)
//! ```
//!
//! The fence is the lease owner *and* the attempt: a runner whose lease expired and whose
//! target was claimed again — by another replica or by this one — never overwrites the
//! newer attempt. Final failures are counted here, in the transaction that writes them,
//! and the claim reads the budget from these rows.

use std::collections::HashMap;

use deadpool_postgres::{Pool, Transaction};
use serde_json::{json, Value};
use uuid::Uuid;

use super::outcome::{Claimed, Finished};
use super::registry_err;
use crate::migrate::{MigrateError, RunOutcome};
use crate::registry::{self, record_events, Actor};
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

/// A tenant event to write with the batch.
type Event = (Uuid, &'static str, Value);

async fn record_in(
    tx: &Transaction<'_>,
    owner: &str,
    actor: &Actor,
    batch: &[Finished],
) -> Result<usize, WaveError> {
    let mut events: Vec<Event> = Vec::new();
    let mut succeeded = Vec::new();
    let (mut retries, mut failures, mut skips) = (Vec::new(), Vec::new(), Vec::new());
    for f in batch {
        match f {
            Finished::Succeeded {
                claim,
                out,
                duration_ms,
                ..
            } => succeeded.push((claim, out, *duration_ms)),
            Finished::Failed {
                claim,
                error,
                backoff,
            } if error.is_retryable() && claim.attempt < claim.run.max_attempts => {
                retries.push((claim, error, backoff.as_secs_f64()))
            }
            Finished::Failed { claim, error, .. } => failures.push((claim, error)),
            Finished::Skipped { claim, reason } => skips.push((claim, reason.as_str())),
        }
    }
    // Up-to-date tenants whose registry already agrees change only their target row.
    let needs: Vec<_> = batch
        .iter()
        .filter(|f| !f.only_target())
        .filter_map(|f| match f {
            Finished::Succeeded {
                claim,
                out,
                duration_ms,
                ..
            } => Some((claim, out, *duration_ms)),
            _ => None,
        })
        .collect();
    let owned = succeed_targets(tx, owner, &succeeded).await?;
    if !needs.is_empty() {
        succeed_tenants(tx, &needs, &owned, &mut events).await?;
    }
    retry_targets(tx, owner, &retries).await?;
    fail_targets(tx, owner, &failures, &mut events).await?;
    skip_targets(tx, owner, &skips).await?;
    record_events(&**tx, actor, events)
        .await
        .map_err(registry_err)?;
    crate::waves::host_limits::adjust(tx, batch).await?;
    record_schemas(tx, batch).await;
    Ok(failures.len())
}

/// Records the schema fingerprints the batch's runs took (and the drift events they
/// cause) under a savepoint: a drift write that fails leaves each tenant's previous
/// fingerprint and never costs the outcomes their record.
async fn record_schemas(tx: &Transaction<'_>, batch: &[Finished]) {
    let taken: Vec<_> = batch
        .iter()
        .filter_map(|f| match f {
            Finished::Succeeded {
                claim,
                out,
                schema: Some(fp),
                ..
            } => Some((claim.tenant_id, out.to, fp)),
            _ => None,
        })
        .collect();
    if taken.is_empty() {
        return;
    }
    let recorded = async {
        tx.batch_execute("SAVEPOINT schema_fingerprints").await?;
        let done = crate::drift::cohorts::record_taken(&**tx, &taken).await;
        let end = match &done {
            Ok(()) => "RELEASE SAVEPOINT schema_fingerprints",
            Err(_) => "ROLLBACK TO SAVEPOINT schema_fingerprints",
        };
        tx.batch_execute(end).await?;
        Ok::<_, tokio_postgres::Error>(done)
    };
    match recorded.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, tenants = taken.len(), "schema fingerprints not recorded")
        }
        Err(e) => {
            tracing::warn!(error = %crate::db::describe(&e), "schema fingerprints not recorded")
        }
    }
}

/// Columns every fenced statement takes: wave, tenant and attempt of each row.
fn keys<'a, T>(rows: &[T], claim: impl Fn(&T) -> &'a Claimed) -> (Vec<Uuid>, Vec<Uuid>, Vec<i32>) {
    (
        rows.iter().map(|r| claim(r).wave_id).collect(),
        rows.iter().map(|r| claim(r).tenant_id).collect(),
        rows.iter().map(|r| claim(r).attempt).collect(),
    )
}

/// Marks the successes' targets succeeded; returns the (wave, tenant) pairs that were
/// still this runner's attempt.
async fn succeed_targets(
    tx: &Transaction<'_>,
    owner: &str,
    rows: &[(&Claimed, &RunOutcome, i64)],
) -> Result<Vec<(Uuid, Uuid)>, WaveError> {
    const SQL: &str = "UPDATE control_plane.wave_targets w SET state = 'succeeded', from_version = d.from_version, \
         to_version = d.to_version, finished_at = now(), duration_ms = d.duration_ms, lease_owner = NULL, \
         lease_expires_at = NULL, error = NULL, error_kind = NULL, detail = NULL \
         FROM unnest($2::uuid[], $3::uuid[], $4::int4[], $5::int4[], $6::int4[], $7::int8[]) \
              AS d(wave_id, tenant_id, attempt, from_version, to_version, duration_ms) \
         WHERE w.wave_id = d.wave_id AND w.tenant_id = d.tenant_id AND w.lease_owner = $1 \
           AND w.attempts = d.attempt AND w.state = 'running' \
         RETURNING w.wave_id, w.tenant_id";
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let (waves, tenants, attempts) = keys(rows, |r| r.0);
    let from: Vec<Option<i32>> = rows.iter().map(|r| r.1.from).collect();
    let to: Vec<Option<i32>> = rows.iter().map(|r| r.1.to).collect();
    let ms: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let stmt = tx.prepare_cached(SQL).await?;
    tx.query(
        &stmt,
        &[&owner, &waves, &tenants, &attempts, &from, &to, &ms],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get("wave_id")?, r.try_get("tenant_id")?)))
    .collect()
}

/// Moves the registry of successes that changed something (or found it lagging), with a
/// `migrated` event when the recorded version moves or files were applied. The tenant
/// update and event are written even if the lease was lost meanwhile: the work happened,
/// and the runner that took the target over finds the tenant at the target and writes no
/// second event. Without the lease, another runner may have recorded a newer version
/// already: then the registry only moves forward, and only a move writes an event.
async fn succeed_tenants(
    tx: &Transaction<'_>,
    rows: &[(&Claimed, &RunOutcome, i64)],
    owned: &[(Uuid, Uuid)],
    events: &mut Vec<Event>,
) -> Result<(), WaveError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0.tenant_id).collect();
    let mut recorded: HashMap<Uuid, Option<i32>> =
        registry::queries::lock_schema_versions(tx, &ids)
            .await?
            .into_iter()
            .collect();
    let (mut set_ids, mut set_versions) = (Vec::new(), Vec::new());
    for (c, out, duration_ms) in rows {
        // A deleted tenant has no row to move.
        let Some(now) = recorded.get(&c.tenant_id).copied() else {
            continue;
        };
        let ours = owned.contains(&(c.wave_id, c.tenant_id));
        let write = ours || now.is_none_or(|r| out.to.is_some_and(|to| to > r));
        if !write {
            tracing::warn!(slug = %c.slug, "lease lost while migrating; a newer version is already recorded");
            continue;
        }
        set_ids.push(c.tenant_id);
        set_versions.push(out.to);
        // Two outcomes of one tenant in a batch: the second sees the first's version.
        recorded.insert(c.tenant_id, out.to);
        if (ours && !out.applied.is_empty()) || now != out.to {
            // When nothing was applied here but the registry lagged (a crash between the
            // tenant's commit and ours), `from` is what the registry believed.
            let from = if out.applied.is_empty() || !ours {
                now
            } else {
                out.from
            };
            let payload = json!({
                "from": from, "to": out.to, "wave_id": c.wave_id, "duration_ms": duration_ms, "applied": out.applied,
            });
            events.push((c.tenant_id, "migrated", payload));
        }
        if !ours {
            tracing::warn!(slug = %c.slug, "lease lost while migrating; the tenant's new version is recorded, the target is left to its new owner");
        }
    }
    registry::queries::set_schema_versions(tx, &set_ids, &set_versions).await?;
    Ok(())
}

/// What a failure's target keeps: the server's words (operators read them), the kind, and
/// for a lock timeout who held the lock (docs/design.md, README "Lock timeouts").
fn failure_columns(err: &MigrateError) -> (String, &'static str, Option<Value>) {
    // Who held the lock a lock timeout waited for; beside it, the form viewers read
    // (`waves::redact`): the target keeps the server's words for operators.
    let blockers = matches!(err, MigrateError::LockTimeout { .. })
        .then(|| json!({ "blockers": err.blockers() }));
    (
        err.to_string(),
        err.kind().as_str(),
        Some(redact::with_public_error(blockers, err)),
    )
}

/// Retryable failures with attempts left: back to pending after their backoff.
async fn retry_targets(
    tx: &Transaction<'_>,
    owner: &str,
    rows: &[(&Claimed, &MigrateError, f64)],
) -> Result<(), WaveError> {
    const SQL: &str = "UPDATE control_plane.wave_targets w SET state = 'pending', lease_owner = NULL, \
         lease_expires_at = NULL, next_attempt_at = now() + make_interval(secs => d.backoff), \
         error = d.error, error_kind = d.kind, detail = d.detail \
         FROM unnest($2::uuid[], $3::uuid[], $4::int4[], $5::float8[], $6::text[], $7::text[], $8::jsonb[]) \
              AS d(wave_id, tenant_id, attempt, backoff, error, kind, detail) \
         WHERE w.wave_id = d.wave_id AND w.tenant_id = d.tenant_id AND w.lease_owner = $1 \
           AND w.attempts = d.attempt AND w.state = 'running'";
    if rows.is_empty() {
        return Ok(());
    }
    let (waves, tenants, attempts) = keys(rows, |r| r.0);
    let backoff: Vec<f64> = rows.iter().map(|r| r.2).collect();
    let cols: Vec<_> = rows.iter().map(|r| failure_columns(r.1)).collect();
    let (errors, kinds, details) = unzip3(cols);
    let stmt = tx.prepare_cached(SQL).await?;
    tx.execute(
        &stmt,
        &[
            &owner, &waves, &tenants, &attempts, &backoff, &errors, &kinds, &details,
        ],
    )
    .await?;
    Ok(())
}

fn unzip3(
    cols: Vec<(String, &'static str, Option<Value>)>,
) -> (Vec<String>, Vec<&'static str>, Vec<Option<Value>>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for (a, b, c) in cols {
        out.0.push(a);
        out.1.push(b);
        out.2.push(c);
    }
    out
}

/// Final failures: failed, with an `error` event (and the tenant flagged for drift or
/// attention) when the target was still this attempt's.
async fn fail_targets(
    tx: &Transaction<'_>,
    owner: &str,
    rows: &[(&Claimed, &MigrateError)],
    events: &mut Vec<Event>,
) -> Result<(), WaveError> {
    const SQL: &str = "UPDATE control_plane.wave_targets w SET state = 'failed', lease_owner = NULL, \
         lease_expires_at = NULL, finished_at = now(), error = d.error, error_kind = d.kind, detail = d.detail \
         FROM unnest($2::uuid[], $3::uuid[], $4::int4[], $5::text[], $6::text[], $7::jsonb[]) \
              AS d(wave_id, tenant_id, attempt, error, kind, detail) \
         WHERE w.wave_id = d.wave_id AND w.tenant_id = d.tenant_id AND w.lease_owner = $1 \
           AND w.attempts = d.attempt AND w.state = 'running' \
         RETURNING w.wave_id, w.tenant_id";
    if rows.is_empty() {
        return Ok(());
    }
    let (waves, tenants, attempts) = keys(rows, |r| r.0);
    let (errors, kinds, details) = unzip3(rows.iter().map(|r| failure_columns(r.1)).collect());
    let stmt = tx.prepare_cached(SQL).await?;
    let owned: Vec<(Uuid, Uuid)> = tx
        .query(
            &stmt,
            &[
                &owner, &waves, &tenants, &attempts, &errors, &kinds, &details,
            ],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get("wave_id")?, r.try_get("tenant_id")?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    for (c, err) in rows {
        if !owned.contains(&(c.wave_id, c.tenant_id)) {
            continue;
        }
        // Events, webhooks and the tenant's issue carry only what may leave drover.
        let (kind, public) = (err.kind().as_str(), err.public());
        let mut payload =
            json!({ "wave_id": c.wave_id, "kind": kind, "error": public, "attempts": c.attempt });
        if matches!(err, MigrateError::LockTimeout { .. }) {
            payload["blockers"] = json!(err.blockers());
        }
        events.push((c.tenant_id, "error", payload));
        if let MigrateError::Drift { version, .. } | MigrateError::NeedsAttention { version, .. } =
            err
        {
            let issue = json!({ "kind": kind, "version": version, "message": public, "wave_id": c.wave_id });
            registry::queries::set_migration_issue(&**tx, c.tenant_id, &issue).await?;
        }
    }
    Ok(())
}

async fn skip_targets(
    tx: &Transaction<'_>,
    owner: &str,
    rows: &[(&Claimed, &str)],
) -> Result<(), WaveError> {
    const SQL: &str = "UPDATE control_plane.wave_targets w SET state = 'skipped', error = d.reason, \
         finished_at = now(), lease_owner = NULL, lease_expires_at = NULL \
         FROM unnest($2::uuid[], $3::uuid[], $4::int4[], $5::text[]) AS d(wave_id, tenant_id, attempt, reason) \
         WHERE w.wave_id = d.wave_id AND w.tenant_id = d.tenant_id AND w.lease_owner = $1 \
           AND w.attempts = d.attempt";
    if rows.is_empty() {
        return Ok(());
    }
    let (waves, tenants, attempts) = keys(rows, |r| r.0);
    let reasons: Vec<&str> = rows.iter().map(|r| r.1).collect();
    let stmt = tx.prepare_cached(SQL).await?;
    tx.execute(&stmt, &[&owner, &waves, &tenants, &attempts, &reasons])
        .await?;
    Ok(())
}

/// Marks a target skipped (the tenant is provisioning, deleting or deleted).
pub async fn skip(pool: &Pool, c: &Claimed, owner: &str, reason: &str) -> Result<(), WaveError> {
    const SQL: &str = "UPDATE control_plane.wave_targets SET state = 'skipped', error = $5, finished_at = now(), \
         lease_owner = NULL, lease_expires_at = NULL \
         WHERE wave_id = $1 AND tenant_id = $2 AND lease_owner = $3 AND attempts = $4";
    let client = pool.get().await?;
    client
        .execute(
            SQL,
            &[&c.wave_id, &c.tenant_id, &owner, &c.attempt, &reason],
        )
        .await?;
    Ok(())
}
