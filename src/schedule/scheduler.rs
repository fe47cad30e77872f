//! The `scheduler` task: on the leader only, once a second, fire the schedules that are due.
//!
//! Exactly once per tick: a tick's wave is created in the same transaction that inserts the
//! `(schedule, tick)` row of `schedule_fires`, so even two replicas that both believe they
//! lead (a lease expiring mid-transaction) cannot both fire it: the second insert conflicts.
//!
//! Missed ticks (no leader ran, or the daemon was down) follow one policy: only the most
//! recent missed tick may fire, and only if it is at most `misfire_grace_seconds` old;
//! otherwise it is recorded as `skipped_missed` and logged. Ticks are never replayed in a
//! burst. A schedule whose previous wave is unfinished skips the tick (`on_overlap: skip`,
//! recorded as `skipped_overlap`) or waits for it (`queue`, subject to the same grace).
//! A stored template that no longer parses (an upgrade renamed a field) fails its tick
//! (`failed`, the parse error as detail) and starts nothing; the schedule still moves on
//! to its next tick.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::cron::{parse_timezone, CronSpec};
use super::leader::Leadership;
use super::store::{fail_in, fire_in, parse_template, ScheduleError};
use crate::sets::Catalog;

/// Runs until `shutdown`; calls `wake_worker` after handling schedules, so the replica's
/// wave worker starts on a new wave at once.
pub async fn run(
    pool: Pool,
    me: String,
    leadership: Arc<Leadership>,
    catalog: Arc<Catalog>,
    wake_worker: impl Fn() + Send + 'static,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return,
        }
        if !leadership.is_leader() {
            continue;
        }
        match tick(&pool, &me, &catalog).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(handled = n, "schedules handled");
                wake_worker();
            }
            Err(e) => tracing::warn!(error = %e, "scheduler tick failed"),
        }
    }
}

/// The most recent tick at or before `now`, starting from the stored `next_fire_at`.
fn latest_due(
    spec: &CronSpec,
    tz: chrono_tz::Tz,
    next_fire_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut tick = next_fire_at;
    // Bounded: a schedule every second that missed a day is 86,400 steps; past the bound
    // the tick is simply old enough to be skipped.
    for _ in 0..100_000 {
        match spec.next_after(tz, tick, 1).first() {
            Some(n) if *n <= now => tick = *n,
            _ => break,
        }
    }
    tick
}

/// Handles every due schedule once; returns how many.
pub async fn tick(pool: &Pool, me: &str, catalog: &Catalog) -> Result<usize, ScheduleError> {
    const DUE: &str =
        "SELECT name, cron, timezone, template, on_overlap, misfire_grace_seconds, next_fire_at, \
last_wave_id \
         FROM control_plane.schedules s WHERE enabled AND next_fire_at <= now() \
         ORDER BY next_fire_at LIMIT 20 FOR UPDATE OF s SKIP LOCKED";
    const ADVANCE: &str =
        "UPDATE control_plane.schedules SET next_fire_at = $2, last_fire_at = $3, \
         last_wave_id = coalesce($4, last_wave_id) WHERE name = $1";
    const SKIPPED: &str = "INSERT INTO control_plane.schedule_fires (schedule_name, tick, outcome, detail, handled_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
    let mut client = pool.get().await?;
    let mut tx = client.transaction().await?;
    let rows = tx.query(DUE, &[]).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    for row in &rows {
        let (name, cron, tz): (String, String, String) = (
            row.try_get("name")?,
            row.try_get("cron")?,
            row.try_get("timezone")?,
        );
        let template = parse_template(&name, row.try_get("template")?);
        let (on_overlap, grace, next_fire_at): (String, i32, DateTime<Utc>) = (
            row.try_get("on_overlap")?,
            row.try_get("misfire_grace_seconds")?,
            row.try_get("next_fire_at")?,
        );
        let previous: Option<Uuid> = row.try_get("last_wave_id")?;
        let (spec, zone) = (CronSpec::parse(&cron)?, parse_timezone(&tz)?);
        let tick = latest_due(&spec, zone, next_fire_at, now);
        let next = spec.next_after(zone, now, 1).first().copied();
        // The previous wave's state comes from the waves module, in this transaction.
        let unfinished = match previous {
            Some(id) => crate::waves::overview::is_unfinished(&*tx, id).await?,
            None => false,
        };
        let late = now - tick > chrono::Duration::seconds(grace as i64);
        let mut wave = None;
        if late {
            let detail = format!(
                "tick was {}s late (grace {grace}s)",
                (now - tick).num_seconds()
            );
            tracing::warn!(schedule = %name, %tick, %detail, "missed tick skipped");
            tx.execute(SKIPPED, &[&name, &tick, &"skipped_missed", &detail, &me])
                .await?;
        } else if unfinished && on_overlap == "queue" {
            // Leave next_fire_at on this tick: it fires once the previous wave ends (within grace).
            continue;
        } else if unfinished {
            let detail = "the schedule's previous wave is still unfinished";
            tx.execute(SKIPPED, &[&name, &tick, &"skipped_overlap", &detail, &me])
                .await?;
        } else {
            // Each template names its own set (or latest); one that names no set fails
            // its tick with the reason, a control-DB failure retries the whole tick.
            let fired = match &template {
                Ok(t) => match catalog.resolve(t.migration_set.as_deref()).await {
                    Ok(set) => fire_in(&mut tx, &name, tick, t, &set, me).await?,
                    Err(e) if e.is_retryable() => {
                        return Err(crate::waves::WaveError::from(e).into())
                    }
                    Err(e) => {
                        let detail = format!("migration_set: {e}");
                        tracing::error!(schedule = %name, %tick, error = %detail, "scheduled wave not started");
                        fail_in(&tx, &name, tick, &detail, me).await?
                    }
                },
                Err(e) => {
                    let detail = e.to_string();
                    tracing::error!(schedule = %name, %tick, error = %detail, "scheduled wave not started");
                    fail_in(&tx, &name, tick, &detail, me).await?
                }
            };
            if let Some(f) = fired {
                tracing::info!(schedule = %name, %tick, outcome = %f.outcome, wave = ?f.wave_id, "schedule fired");
                wave = f.wave_id;
            }
        }
        tx.execute(ADVANCE, &[&name, &next, &tick, &wave]).await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}
