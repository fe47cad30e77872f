//! Claim step 1: lock the wave's row and read what the claim needs of it — its columns,
//! its [`RunSettings`] and its plan's migration source — in one statement.

use std::sync::Arc;

use deadpool_postgres::Transaction;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::registry::{record_event, Actor};
use crate::sets::PlanSource;
use crate::waves::row::Wave;
use crate::waves::run_settings::RunSettings;
use crate::waves::WaveError;

/// A wave whose row this transaction holds locked.
pub(super) struct Locked {
    pub wave: Wave,
    pub run: RunSettings,
    pub source: Arc<PlanSource>,
}

/// Locks wave `wave_id` (`None`: another claimer holds it, or it is gone). The row lock
/// serializes claimers of one wave, which is what makes the concurrency caps hold across
/// replicas; SKIP LOCKED means nobody waits for it.
pub(super) async fn lock(tx: &Transaction<'_>, wave_id: Uuid) -> Result<Option<Locked>, WaveError> {
    // Projections of the plan: the whole plan (request, lint findings, analysis checks)
    // is not worth sending on every claim.
    const WAVE: &str = concat!(
        "SELECT ",
        crate::waves::row::wave_cols!(),
        ", (plan->'settings') - 'analysis' AS run_settings, ",
        crate::waves::row::plan_source_cols!(),
        " FROM control_plane.waves WHERE id = $1 FOR UPDATE SKIP LOCKED"
    );
    // Every statement is prepared once per pooled connection: a claim runs for every few
    // tenants, and an unprepared statement costs a second round trip.
    let stmt = tx.prepare_cached(WAVE).await?;
    let Some(row) = tx.query_opt(&stmt, &[&wave_id]).await? else {
        return Ok(None);
    };
    let wave = Wave::from_row(&row)?;
    let settings: Option<Value> = row.try_get("run_settings")?;
    Ok(Some(Locked {
        run: RunSettings::from_plan(settings.as_ref(), &wave),
        source: Arc::new(crate::waves::row::plan_source_from_row(&row)?),
        wave,
    }))
}

/// Fails the wave's targets whose lease ran out with no attempts left: their runner died
/// every time (e.g. the tenant's migration keeps getting the replica OOM-killed), so they
/// are not handed to the next replica forever. True when there were any (the failure
/// budget must see them before anything else is claimed).
pub(super) async fn fail_exhausted(
    tx: &Transaction<'_>,
    locked: &Locked,
) -> Result<bool, WaveError> {
    const EXHAUSTED: &str = "UPDATE control_plane.wave_targets SET state = 'failed', lease_owner = NULL, \
         lease_expires_at = NULL, finished_at = now(), error_kind = 'retryable', \
         error = 'the replica migrating this tenant stopped ' || attempts || ' times (lease expired); not retried again' \
         WHERE wave_id = $1 AND state = 'running' AND lease_expires_at <= now() AND attempts >= $2 \
         RETURNING tenant_id, error";
    let wave_id = locked.wave.id;
    let stmt = tx.prepare_cached(EXHAUSTED).await?;
    let exhausted = tx
        .query(&stmt, &[&wave_id, &locked.run.max_attempts])
        .await?;
    if exhausted.is_empty() {
        return Ok(false);
    }
    // A dry run writes nothing about the tenant, not even its failure.
    if !locked.run.dry_run {
        let actor = Actor::new("drover").map_err(super::registry_err)?;
        for r in &exhausted {
            let (tenant, error): (Uuid, String) = (r.try_get("tenant_id")?, r.try_get("error")?);
            let payload = json!({ "wave_id": wave_id, "kind": "retryable", "error": error });
            record_event(&**tx, tenant, "error", &actor, payload)
                .await
                .map_err(super::registry_err)?;
        }
    }
    Ok(true)
}
