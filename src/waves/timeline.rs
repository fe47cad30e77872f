//! The wave timeline (`control_plane.wave_events`, docs/design.md#wave-timeline) and
//! [`apply`], the one function through which a wave's state changes: it updates the wave
//! row and writes the transition's event in the caller's transaction, which holds the
//! wave's row lock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use super::state::{Transition, WaveState};
use super::WaveError;
use crate::registry::Actor;

/// Every timeline event type (docs/design.md#wave-timeline): `created`, then one per kind of
/// transition (the state machine's tests check each transition names one of these).
pub const EVENT_TYPES: [&str; 12] = [
    "created",
    "canary_started",
    "canary_passed",
    "soak_started",
    "soak_passed",
    "promoted",
    "batch_started",
    "halted",
    "paused",
    "resumed",
    "aborted",
    "completed",
];

/// One entry of a wave's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WaveEvent {
    pub id: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub actor: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/waves/{id}/events`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WaveTimeline)]
pub struct Timeline {
    pub items: Vec<WaveEvent>,
}

const INSERT: &str = "INSERT INTO control_plane.wave_events (wave_id, event_type, actor, payload) \
     VALUES ($1, $2, $3, $4)";

/// Writes the `created` event of a new wave (in the transaction that stores it).
pub async fn record_created(
    tx: &Transaction<'_>,
    wave_id: Uuid,
    actor: &Actor,
    payload: Value,
) -> Result<(), WaveError> {
    let payload = with_behalf(payload, actor);
    tx.execute(INSERT, &[&wave_id, &"created", &actor.as_str(), &payload])
        .await?;
    Ok(())
}

/// Moves the wave along `t` and records it. The caller holds the wave's row lock and
/// chose `t` with [`super::state::step`] or [`super::state::operate`].
pub async fn apply(
    tx: &Transaction<'_>,
    wave_id: Uuid,
    t: &Transition,
    actor: &Actor,
) -> Result<(), WaveError> {
    // $6 says what happens to the soak timer: 'start', 'clear' or 'keep'.
    const SET: &str = "UPDATE control_plane.waves SET state = $2, \
         current_phase = coalesce($3, current_phase), paused_from = $4, halt_reason = $5, \
         soak_until = CASE $6 WHEN 'start' THEN now() + make_interval(secs => soak_seconds) \
                             WHEN 'clear' THEN NULL ELSE soak_until END, \
         started_at = CASE WHEN $2 IN ('canary', 'rolling') THEN coalesce(started_at, now()) ELSE started_at END, \
         finished_at = CASE WHEN $2 IN ('completed', 'aborted') THEN now() ELSE finished_at END, \
         promoted_by = CASE WHEN $7 THEN $8 ELSE promoted_by END, \
         promoted_at = CASE WHEN $7 THEN now() ELSE promoted_at END \
         WHERE id = $1";
    const RETRY_FAILED: &str = "UPDATE control_plane.wave_targets SET state = 'pending', attempts = 0, \
         next_attempt_at = now(), error = NULL, error_kind = NULL WHERE wave_id = $1 AND state = 'failed'";
    const SKIP_PENDING: &str =
        "UPDATE control_plane.wave_targets SET state = 'skipped', error = 'wave aborted' \
         WHERE wave_id = $1 AND state = 'pending'";
    let to = t.to();
    let phase: Option<i32> = match t {
        Transition::StartCanary => Some(0),
        Transition::StartBatch { batch } => Some(*batch),
        _ => None,
    };
    let paused_from: Option<&str> = match t {
        Transition::Pause { from, .. } => Some(from.as_str()),
        _ => None,
    };
    let reason: Option<String> = match t {
        Transition::Halt { reason } => Some(reason.clone()),
        Transition::Pause { reason, .. } => reason.clone(),
        Transition::Abort => Some(format!("aborted by {}", actor.as_str())),
        _ => None,
    };
    let soak = match t {
        Transition::StartSoak { .. } => "start",
        // A soak interrupted by a pause starts over: the evidence before it is not enough.
        Transition::CanaryPassed => "clear",
        Transition::Resume { to, .. } if *to == WaveState::Soaking => "clear",
        _ => "keep",
    };
    let promoted = matches!(t, Transition::Promote);
    tx.execute(
        SET,
        &[
            &wave_id,
            &to.as_str(),
            &phase,
            &paused_from,
            &reason,
            &soak,
            &promoted,
            &actor.as_str(),
        ],
    )
    .await?;
    match t {
        Transition::StartSoak { .. } => super::analysis::run::start_soak(tx, wave_id).await?,
        Transition::Resume {
            from: WaveState::Halted,
            ..
        } => {
            tx.execute(RETRY_FAILED, &[&wave_id]).await?;
        }
        Transition::Abort => {
            tx.execute(SKIP_PENDING, &[&wave_id]).await?;
        }
        _ => {}
    }
    let payload = with_behalf(t.payload(), actor);
    tx.execute(
        INSERT,
        &[&wave_id, &t.event_type(), &actor.as_str(), &payload],
    )
    .await?;
    Ok(())
}

/// Adds whom the caller said it acts for (`X-Drover-Actor`); the actor stays the token's.
fn with_behalf(mut payload: Value, actor: &Actor) -> Value {
    if let (Some(who), Some(map)) = (actor.behalf(), payload.as_object_mut()) {
        map.insert("on_behalf_of".into(), Value::String(who.to_string()));
    }
    payload
}

/// A wave's timeline, oldest first.
pub async fn events(
    client: &impl GenericClient,
    wave_id: Uuid,
) -> Result<Vec<WaveEvent>, WaveError> {
    const SQL: &str =
        "SELECT id, event_type, actor, payload, created_at FROM control_plane.wave_events \
         WHERE wave_id = $1 ORDER BY id";
    let rows = client.query(SQL, &[&wave_id]).await?;
    rows.iter()
        .map(|r| {
            Ok(WaveEvent {
                id: r.try_get("id")?,
                event_type: r.try_get("event_type")?,
                actor: r.try_get("actor")?,
                payload: r.try_get("payload")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}
