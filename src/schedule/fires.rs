//! Reads of the history of handled ticks (`control_plane.schedule_fires`; the writes are
//! in [`super::store`], in the tick's transaction).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::store::{ScheduleError, ScheduleStore};

/// One handled tick of a schedule.
#[derive(Debug, Clone)]
pub struct FireRecord {
    pub schedule_name: String,
    pub tick: DateTime<Utc>,
    /// As stored: `fired`, `skipped_overlap`, `skipped_missed` or `failed`.
    pub outcome: String,
    /// The wave the tick started, if it started one.
    pub wave_id: Option<Uuid>,
    pub detail: Option<String>,
}

impl ScheduleStore {
    /// The `per_schedule` newest fires of every schedule, by schedule name, newest first.
    pub async fn last_fires(&self, per_schedule: i64) -> Result<Vec<FireRecord>, ScheduleError> {
        const SQL: &str = "SELECT schedule_name, tick, outcome, wave_id, detail \
             FROM (SELECT schedule_name, tick, outcome, wave_id, detail, \
                     row_number() OVER (PARTITION BY schedule_name ORDER BY tick DESC) AS rn \
                   FROM control_plane.schedule_fires) f \
             WHERE f.rn <= $1 ORDER BY f.schedule_name, f.tick DESC";
        let client = self.pool().get().await.map_err(crate::db::DbError::from)?;
        client
            .query(SQL, &[&per_schedule])
            .await
            .map_err(crate::db::DbError::from)?
            .iter()
            .map(|r| {
                Ok(FireRecord {
                    schedule_name: r.try_get("schedule_name")?,
                    tick: r.try_get("tick")?,
                    outcome: r.try_get("outcome")?,
                    wave_id: r.try_get("wave_id")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(|e| ScheduleError::Db(e.into()))
    }
}

/// Deletes at most `batch` fires handled more than `older_than` ago, oldest first, keeping
/// every schedule's newest (the retention task's step); returns how many.
pub async fn prune(
    client: &impl tokio_postgres::GenericClient,
    older_than: std::time::Duration,
    batch: i64,
) -> Result<u64, crate::db::DbError> {
    const SQL: &str = "DELETE FROM control_plane.schedule_fires f USING \
         (SELECT schedule_name, tick FROM control_plane.schedule_fires o \
          WHERE handled_at < now() - make_interval(secs => $1) \
            AND tick < (SELECT max(tick) FROM control_plane.schedule_fires n \
                        WHERE n.schedule_name = o.schedule_name) \
          ORDER BY handled_at LIMIT $2) old \
         WHERE f.schedule_name = old.schedule_name AND f.tick = old.tick";
    Ok(client
        .execute(SQL, &[&older_than.as_secs_f64(), &batch])
        .await?)
}
