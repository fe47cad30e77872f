//! Handling one tick: the `schedule_fires` row and the wave it starts commit together,
//! inside the caller's transaction (the scheduler's, or a manual trigger's).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::ScheduleError;
use crate::migrate::MigrationSet;
use crate::registry::Actor;
use crate::waves::{WaveRequest, WaveStore};

/// What handling a tick did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Fired {
    pub schedule: String,
    pub tick: DateTime<Utc>,
    #[schema(value_type = FiredOutcome)]
    pub outcome: String,
    #[schema(required)]
    pub wave_id: Option<Uuid>,
    #[schema(required)]
    pub detail: Option<String>,
}

/// The wave request a stored template describes. Never a default: an empty request would
/// be a wave over every tenant to the latest version.
pub fn parse_template(name: &str, stored: serde_json::Value) -> Result<WaveRequest, ScheduleError> {
    serde_json::from_value(stored).map_err(|e| ScheduleError::BrokenTemplate {
        name: name.to_string(),
        why: e.to_string(),
    })
}

/// Records `tick` of `name` as `failed` with `detail` inside `tx`, starting nothing (the
/// tick's wave could not even be asked for); a tick already handled does nothing.
pub async fn fail_in(
    tx: &tokio_postgres::Transaction<'_>,
    name: &str,
    tick: DateTime<Utc>,
    detail: &str,
    handled_by: &str,
) -> Result<Option<Fired>, ScheduleError> {
    const SQL: &str = "INSERT INTO control_plane.schedule_fires (schedule_name, tick, outcome, detail, handled_by) \
         VALUES ($1, $2, 'failed', $3, $4) ON CONFLICT DO NOTHING";
    if tx
        .execute(SQL, &[&name, &tick, &detail, &handled_by])
        .await?
        == 0
    {
        return Ok(None);
    }
    Ok(Some(Fired {
        schedule: name.into(),
        tick,
        outcome: "failed".into(),
        wave_id: None,
        detail: Some(detail.into()),
    }))
}

/// Fires `tick` of `name` inside `tx`: the fire row and the wave commit together or not at
/// all; a tick already handled (by another leader, or a retry) does nothing.
pub async fn fire_in(
    tx: &mut tokio_postgres::Transaction<'_>,
    name: &str,
    tick: DateTime<Utc>,
    template: &WaveRequest,
    set: &MigrationSet,
    handled_by: &str,
) -> Result<Option<Fired>, ScheduleError> {
    const CLAIM_TICK: &str =
        "INSERT INTO control_plane.schedule_fires (schedule_name, tick, outcome, handled_by) \
         VALUES ($1, $2, 'fired', $3) ON CONFLICT DO NOTHING";
    const SET_WAVE: &str = "UPDATE control_plane.schedule_fires SET wave_id = $3 WHERE schedule_name = $1 AND tick = $2";
    const FAILED: &str = "UPDATE control_plane.schedule_fires SET outcome = 'failed', detail = $3 \
         WHERE schedule_name = $1 AND tick = $2";
    if tx.execute(CLAIM_TICK, &[&name, &tick, &handled_by]).await? == 0 {
        return Ok(None);
    }
    let actor = Actor::new(&format!("schedule:{name}")).map_err(|e| ScheduleError::Invalid {
        field: "name",
        message: e.to_string(),
    })?;
    // A savepoint, so a wave that cannot be created (no tenants, an overlapping wave)
    // leaves a `failed` fire row instead of aborting the scheduler's transaction.
    let sp = tx.savepoint("fire").await?;
    match WaveStore::create_in(&sp, template, set, &actor).await {
        Ok(id) => {
            sp.execute(SET_WAVE, &[&name, &tick, &id]).await?;
            sp.commit().await?;
            Ok(Some(Fired {
                schedule: name.into(),
                tick,
                outcome: "fired".into(),
                wave_id: Some(id),
                detail: None,
            }))
        }
        Err(e) => {
            sp.rollback().await?;
            let detail = e.to_string();
            tx.execute(FAILED, &[&name, &tick, &detail]).await?;
            tracing::warn!(schedule = name, %tick, error = %detail, "scheduled wave could not be created");
            Ok(Some(Fired {
                schedule: name.into(),
                tick,
                outcome: "failed".into(),
                wave_id: None,
                detail: Some(detail),
            }))
        }
    }
}

/// The schema of [`Fired::outcome`].
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum FiredOutcome {
    Fired,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_template_with_an_unknown_field_is_broken_and_names_the_field() {
        let err = parse_template("nightly", json!({"canary_count": 2})).unwrap_err();

        assert!(
            matches!(&err, ScheduleError::BrokenTemplate { name, .. } if name == "nightly"),
            "{err}"
        );
        assert!(err.to_string().contains("canary_count"), "{err}");
        assert!(
            err.to_string().contains("PATCH /v1/schedules/nightly"),
            "{err}"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn an_empty_stored_template_is_the_default_request() {
        let req = parse_template("nightly", json!({})).unwrap();

        assert!(req.analysis.is_none());
    }
}
