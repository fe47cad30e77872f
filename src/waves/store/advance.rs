//! Moving waves: operator actions and the engine's steps along the state machine, each
//! in one transaction under the wave's row lock.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{WaveStore, WaveView};
use crate::registry::Actor;
use crate::waves::analysis;
use crate::waves::redact::Audience;
use crate::waves::row::{wave_cols, Wave};
use crate::waves::state::{
    self as machine, Action, Budget, Counts, Gate, Snapshot, Transition, WaveState,
};
use crate::waves::timeline;
use crate::waves::WaveError;

impl WaveStore {
    /// Operator action: pause, resume, abort or promote, written with the actor.
    ///
    /// Resuming a wave that was paused while soaking restarts the soak and its analysis
    /// (the evidence before the pause is not enough, or a person would have promoted);
    /// promote ends the soak at once and starts the first batch. The engine then takes
    /// the steps that follow at once, so the answer shows where the wave went.
    pub async fn act(
        &self,
        id: Uuid,
        action: Action,
        actor: &Actor,
    ) -> Result<WaveView, WaveError> {
        const LOCK: &str = concat!(
            "SELECT ",
            wave_cols!(),
            " FROM control_plane.waves WHERE id = $1 FOR UPDATE"
        );
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(LOCK, &[&id])
            .await?
            .ok_or_else(|| WaveError::NotFound(id.to_string()))?;
        let Wave {
            state,
            paused_from,
            current_phase,
            ..
        } = Wave::from_row(&row)?;
        let Some(t) = machine::operate(state, paused_from, current_phase, action) else {
            tx.rollback().await?;
            return Err(WaveError::IllegalState {
                id: id.to_string(),
                action: action.as_str(),
                state: state.to_string(),
            });
        };
        timeline::apply(&tx, id, &t, actor).await?;
        tx.commit().await?;
        tracing::info!(wave = %id, action = action.as_str(), actor = actor.as_str(), to = %t.to(), "wave {}", t.event_type());
        let engine = engine_actor();
        while self.advance_as(id, &engine).await? {}
        // Only operators and admins act on waves.
        self.view(id, Audience::Operators).await
    }

    /// Waves still moving, oldest first.
    pub async fn active(&self) -> Result<Vec<Uuid>, WaveError> {
        const SQL: &str = "SELECT id FROM control_plane.waves \
             WHERE state IN ('pending', 'canary', 'soaking', 'rolling') ORDER BY created_at";
        let client = self.pool.get().await?;
        client
            .query(SQL, &[])
            .await?
            .iter()
            .map(|r| Ok(r.try_get("id")?))
            .collect()
    }

    /// Moves the wave one step along its state machine if one is due. Skips (returns
    /// false) when another replica holds the wave's row lock right now.
    pub async fn advance(&self, id: Uuid) -> Result<bool, WaveError> {
        self.advance_as(id, &engine_actor()).await
    }

    async fn advance_as(&self, id: Uuid, actor: &Actor) -> Result<bool, WaveError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Ended explicitly: a dropped transaction only queues its ROLLBACK, and the row
        // lock it holds would make the claim that follows skip the wave for a tick.
        let Some(snapshot) = snapshot(&tx, id).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        let Some(t) = machine::step(&snapshot) else {
            tx.rollback().await?;
            return Ok(false);
        };
        timeline::apply(&tx, id, &t, actor).await?;
        tx.commit().await?;
        match &t {
            Transition::Halt { reason }
            | Transition::Pause {
                reason: Some(reason),
                ..
            } => {
                tracing::warn!(wave = %id, from = %snapshot.state, to = %t.to(), %reason, "wave {}", t.event_type())
            }
            _ => {
                tracing::info!(wave = %id, from = %snapshot.state, to = %t.to(), event = t.event_type(), "wave advanced")
            }
        }
        Ok(true)
    }
}

/// The engine's identity in the timeline.
fn engine_actor() -> Actor {
    Actor::new("drover").unwrap_or_else(|_| unreachable!("static actor is valid"))
}

/// Reads what [`machine::step`] decides from, locking the wave's row; `None` when another
/// replica holds the lock (it is moving the wave right now).
/// `slug failed: error` of the one target `sql` selects for wave `id`, if any.
async fn first_failed(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &str,
    id: Uuid,
) -> Result<Option<String>, WaveError> {
    tx.query_opt(sql, &[&id])
        .await?
        .map(|r| -> Result<String, WaveError> {
            let (slug, error): (String, String) = (r.try_get("slug")?, r.try_get("error")?);
            Ok(format!("{slug} failed: {error}"))
        })
        .transpose()
}

async fn snapshot(
    tx: &tokio_postgres::Transaction<'_>,
    id: Uuid,
) -> Result<Option<Snapshot>, WaveError> {
    const LOCK: &str = concat!(
        "SELECT ",
        wave_cols!(),
        ", soak_until <= now() AS soak_done FROM control_plane.waves WHERE id = $1 FOR UPDATE SKIP LOCKED"
    );
    const COUNTS: &str = "SELECT phase, state, count(*) AS n FROM control_plane.wave_targets WHERE wave_id = $1 GROUP BY 1, 2";
    const FIRST_FAILED_CANARY: &str =
        "SELECT slug, coalesce(error, '') AS error FROM control_plane.wave_targets \
         WHERE wave_id = $1 AND phase = 0 AND state = 'failed' ORDER BY finished_at LIMIT 1";
    const FIRST_ATTENTION: &str =
        "SELECT slug, coalesce(error, '') AS error FROM control_plane.wave_targets \
         WHERE wave_id = $1 AND state = 'failed' AND error_kind = 'needs_attention' \
         ORDER BY finished_at LIMIT 1";
    let Some(w) = tx.query_opt(LOCK, &[&id]).await? else {
        return Ok(None);
    };
    let wave = Wave::from_row(&w)?;
    let state = wave.state;
    let mut phases: BTreeMap<i32, Counts> = BTreeMap::new();
    for r in tx.query(COUNTS, &[&id]).await? {
        let (phase, target_state, n): (i32, String, i64) =
            (r.try_get("phase")?, r.try_get("state")?, r.try_get("n")?);
        phases.entry(phase).or_default().add(&target_state, n);
    }
    let soak_started = wave.soak_until.is_some();
    let gate = if state == WaveState::Soaking && soak_started {
        let done: Option<bool> = w.try_get("soak_done")?;
        analysis::run::gate(tx, id, done.unwrap_or(false)).await?
    } else {
        Gate::Wait
    };
    let failed_canary =
        if state == WaveState::Canary && phases.get(&0).is_some_and(|c| c.failed > 0) {
            first_failed(tx, FIRST_FAILED_CANARY, id).await?
        } else {
            None
        };
    let dry_run_attention =
        if wave.dry_run && state == WaveState::Rolling && phases.values().any(|c| c.failed > 0) {
            first_failed(tx, FIRST_ATTENTION, id).await?
        } else {
            None
        };
    Ok(Some(Snapshot {
        state,
        phase: wave.current_phase,
        phase_count: wave.phase_count,
        paused_from: wave.paused_from,
        soak_started,
        soak_seconds: wave.soak_seconds,
        dry_run: wave.dry_run,
        budget: Budget {
            max_failures: wave.max_failures,
            max_failure_percent: wave.max_failure_percent,
        },
        phases,
        gate,
        failed_canary,
        dry_run_attention,
    }))
}
