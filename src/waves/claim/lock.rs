//! Claim step 1: lock the rows of the waves to claim from and read what the claim needs
//! of them — columns, [`RunSettings`], the plan's migration source — in one statement.

use std::sync::Arc;

use deadpool_postgres::Transaction;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::registry::{record_events, Actor};
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

/// Locks those of `wave_ids` that take claims now (canary, rolling) and that no other
/// claimer holds. The row lock serializes claimers of one wave, which is what makes the
/// concurrency caps and the failure budget hold across replicas; SKIP LOCKED means nobody
/// waits for it. The caps are read by the next statement, whose snapshot is taken after
/// these locks are held, so it sees every claim committed before.
pub(super) async fn lock_many(
    tx: &Transaction<'_>,
    wave_ids: &[Uuid],
) -> Result<Vec<Locked>, WaveError> {
    // Projections of the plan: the whole plan (request, lint findings, analysis checks)
    // is not worth sending on every claim.
    const WAVES: &str = concat!(
        "SELECT ",
        crate::waves::row::wave_cols!(),
        ", (plan->'settings') - 'analysis' AS run_settings, ",
        crate::waves::row::plan_source_cols!(),
        " FROM control_plane.waves WHERE id = ANY($1) AND state IN ('canary', 'rolling') \
         ORDER BY id FOR UPDATE SKIP LOCKED"
    );
    // Every statement is prepared once per pooled connection: a claim runs for every few
    // tenants, and an unprepared statement costs a second round trip.
    let stmt = tx.prepare_cached(WAVES).await?;
    let mut locked = Vec::new();
    for row in tx.query(&stmt, &[&wave_ids]).await? {
        let wave = Wave::from_row(&row)?;
        let settings: Option<Value> = row.try_get("run_settings")?;
        locked.push(Locked {
            run: RunSettings::from_plan(settings.as_ref(), &wave),
            source: Arc::new(crate::waves::row::plan_source_from_row(&row)?),
            wave,
        });
    }
    Ok(locked)
}

/// Fails the wave's targets whose lease ran out with no attempts left: their runner died
/// every time (e.g. the tenant's migration keeps getting the replica OOM-killed), so they
/// are not handed to the next replica forever. The claim that follows in the same
/// transaction counts them against the failure budget.
pub(super) async fn fail_exhausted(
    tx: &Transaction<'_>,
    locked: &[&Locked],
) -> Result<(), WaveError> {
    const EXHAUSTED: &str = "UPDATE control_plane.wave_targets w SET state = 'failed', lease_owner = NULL, \
         lease_expires_at = NULL, finished_at = now(), error_kind = 'retryable', \
         error = 'the replica migrating this tenant stopped ' || w.attempts || ' times (lease expired); not retried again' \
         FROM unnest($1::uuid[], $2::int4[]) AS d(wave_id, max_attempts) \
         WHERE w.wave_id = d.wave_id AND w.state = 'running' AND w.lease_expires_at <= now() \
           AND w.attempts >= d.max_attempts \
         RETURNING w.wave_id, w.tenant_id, w.error";
    if locked.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = locked.iter().map(|l| l.wave.id).collect();
    let max: Vec<i32> = locked.iter().map(|l| l.run.max_attempts).collect();
    let stmt = tx.prepare_cached(EXHAUSTED).await?;
    let mut events = Vec::new();
    for r in tx.query(&stmt, &[&ids, &max]).await? {
        let wave_id: Uuid = r.try_get("wave_id")?;
        // A dry run writes nothing about the tenant, not even its failure.
        if locked.iter().any(|l| l.wave.id == wave_id && l.run.dry_run) {
            continue;
        }
        let (tenant, error): (Uuid, String) = (r.try_get("tenant_id")?, r.try_get("error")?);
        let payload = json!({ "wave_id": wave_id, "kind": "retryable", "error": error });
        events.push((tenant, "error", payload));
    }
    let actor = Actor::new("drover").map_err(super::registry_err)?;
    record_events(&**tx, &actor, events)
        .await
        .map_err(super::registry_err)
}
