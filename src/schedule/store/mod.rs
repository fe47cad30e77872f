//! Schedules in the control DB: create, read, change, delete, and the tick handling that
//! fires waves (used by the scheduler loop and by `POST /v1/schedules/{name}/trigger`).
//!
//! Split by responsibility: here the `schedules` table's reads and writes; `error` why
//! they fail; `bodies` the request bodies and the view; `fire` a tick's handling
//! (`schedule_fires` writes and the wave it starts). Everything is re-exported here.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::json;

use super::cron::{parse_timezone, CronSpec};
use crate::registry::Actor;
use crate::waves::WaveRequest;

mod bodies;
mod error;
mod fire;

pub use bodies::{NewSchedule, Overlap, SchedulePatch, ScheduleView};
pub use error::ScheduleError;
pub use fire::{fail_in, fire_in, parse_template, Fired, FiredOutcome};

const COLS: &str =
    "name, cron, timezone, template, enabled, on_overlap, misfire_grace_seconds, next_fire_at, \
                    last_fire_at, last_wave_id";

/// Reads the [`COLS`] of `row` by name.
fn view(row: &tokio_postgres::Row) -> Result<ScheduleView, tokio_postgres::Error> {
    let (cron, tz): (String, String) = (row.try_get("cron")?, row.try_get("timezone")?);
    let (translated, next_fires) = match (CronSpec::parse(&cron), parse_timezone(&tz)) {
        (Ok(spec), Ok(zone)) => (
            spec.translated().to_string(),
            spec.next_after(zone, Utc::now(), 5)
                .iter()
                .map(|t| t.with_timezone(&zone).to_rfc3339())
                .collect(),
        ),
        _ => (String::new(), Vec::new()),
    };
    Ok(ScheduleView {
        name: row.try_get("name")?,
        cron,
        cron_translated: translated,
        timezone: tz,
        template: row.try_get("template")?,
        enabled: row.try_get("enabled")?,
        on_overlap: row.try_get("on_overlap")?,
        misfire_grace_seconds: row.try_get("misfire_grace_seconds")?,
        next_fire_at: row.try_get("next_fire_at")?,
        last_fire_at: row.try_get("last_fire_at")?,
        last_wave_id: row.try_get("last_wave_id")?,
        next_fires,
    })
}

fn check_overlap(v: &str) -> Result<(), ScheduleError> {
    if v == "skip" || v == "queue" {
        Ok(())
    } else {
        Err(ScheduleError::Invalid {
            field: "on_overlap",
            message: "must be skip or queue".into(),
        })
    }
}

fn check_template(t: &WaveRequest) -> Result<(), ScheduleError> {
    t.settings()
        .map(|_| ())
        .map_err(|e| ScheduleError::Invalid {
            field: "template",
            message: e.to_string(),
        })
}

/// The first fire after now.
pub fn next_fire(cron: &str, tz: &str) -> Result<Option<DateTime<Utc>>, ScheduleError> {
    let (spec, zone) = (CronSpec::parse(cron)?, parse_timezone(tz)?);
    Ok(spec.next_after(zone, Utc::now(), 1).first().copied())
}

/// An enabled schedule's next fire time (for `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextFire {
    pub name: String,
    /// Unix time in seconds.
    pub at: i64,
}

/// The next fire time of every enabled schedule that has one.
pub async fn next_fires(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<NextFire>, tokio_postgres::Error> {
    const SQL: &str =
        "SELECT name, extract(epoch FROM next_fire_at)::bigint AS next_fire FROM control_plane.schedules \
         WHERE enabled AND next_fire_at IS NOT NULL";
    client
        .query(SQL, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(NextFire {
                name: r.try_get("name")?,
                at: r.try_get("next_fire")?,
            })
        })
        .collect()
}

/// Names of the schedules whose template names one of `sets` (set ids or labels), by
/// name: deleting a set is refused while any does (read in its transaction).
pub async fn naming_sets(
    client: &impl tokio_postgres::GenericClient,
    sets: &[String],
) -> Result<Vec<String>, tokio_postgres::Error> {
    const SQL: &str = "SELECT name FROM control_plane.schedules \
         WHERE template->>'migration_set' = ANY($1) ORDER BY name";
    client
        .query(SQL, &[&sets])
        .await?
        .iter()
        .map(|r| r.try_get("name"))
        .collect()
}

/// Schedule SQL over the control pool.
#[derive(Clone)]
pub struct ScheduleStore {
    pool: Pool,
}

impl ScheduleStore {
    /// A store over the control pool.
    pub fn new(pool: Pool) -> Self {
        ScheduleStore { pool }
    }

    /// The control pool, for the schedule module's other reads.
    pub(super) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Creates a schedule; its next fire time is computed now.
    pub async fn create(
        &self,
        s: &NewSchedule,
        actor: &Actor,
    ) -> Result<ScheduleView, ScheduleError> {
        let sql = format!(
            "INSERT INTO control_plane.schedules (name, cron, timezone, template, enabled, on_overlap, \
             misfire_grace_seconds, next_fire_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLS}"
        );
        s.name.parse::<crate::registry::Slug>().map_err(|_| ScheduleError::Invalid {
            field: "name",
            message: "must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit".into(),
        })?;
        let tz = s.timezone.clone().unwrap_or_else(|| "UTC".into());
        let next = next_fire(&s.cron, &tz)?;
        let template = s.template.clone().unwrap_or_default();
        check_template(&template)?;
        let on_overlap = s.on_overlap.clone().unwrap_or_else(|| "skip".into());
        check_overlap(&on_overlap)?;
        let grace = s.misfire_grace_seconds.unwrap_or(300);
        if grace < 0 {
            return Err(ScheduleError::Invalid {
                field: "misfire_grace_seconds",
                message: "must be 0 or more".into(),
            });
        }
        let template = serde_json::to_value(&template).unwrap_or_default();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                &sql,
                &[
                    &s.name,
                    &s.cron.trim(),
                    &tz,
                    &template,
                    &s.enabled.unwrap_or(true),
                    &on_overlap,
                    &grace,
                    &next,
                    &actor.as_str(),
                ],
            )
            .await
            .map_err(|e| match ScheduleError::from(e) {
                ScheduleError::Duplicate(_) => ScheduleError::Duplicate(s.name.clone()),
                other => other,
            })?;
        let created = view(&row)?;
        let payload = json!({ "schedule": created.name, "cron": created.cron,
            "timezone": created.timezone, "enabled": created.enabled });
        record(&*tx, "schedule.created", actor, payload).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// One schedule.
    pub async fn get(&self, name: &str) -> Result<ScheduleView, ScheduleError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!("SELECT {COLS} FROM control_plane.schedules WHERE name = $1"),
                &[&name],
            )
            .await?
            .ok_or_else(|| ScheduleError::NotFound(name.to_string()))?;
        Ok(view(&row)?)
    }

    /// All schedules by name.
    pub async fn list(&self) -> Result<Vec<ScheduleView>, ScheduleError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!("SELECT {COLS} FROM control_plane.schedules ORDER BY name"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(view).collect::<Result<_, _>>()?)
    }

    /// Applies a patch; a new expression or timezone recomputes the next fire time.
    /// Enabling and disabling are changes of `enabled`; the `schedule.updated` event lists
    /// the fields that changed with their new values.
    pub async fn update(
        &self,
        name: &str,
        p: &SchedulePatch,
        actor: &Actor,
    ) -> Result<ScheduleView, ScheduleError> {
        let current = self.get(name).await?;
        let before = current.clone();
        let cron = p.cron.clone().unwrap_or(current.cron);
        let tz = p.timezone.clone().unwrap_or(current.timezone);
        let next = next_fire(&cron, &tz)?;
        let template = match &p.template {
            Some(t) => {
                check_template(t)?;
                serde_json::to_value(t).unwrap_or_default()
            }
            None => current.template,
        };
        let on_overlap = p.on_overlap.clone().unwrap_or(current.on_overlap);
        check_overlap(&on_overlap)?;
        if p.misfire_grace_seconds.is_some_and(|g| g < 0) {
            return Err(ScheduleError::Invalid {
                field: "misfire_grace_seconds",
                message: "must be 0 or more".into(),
            });
        }
        let sql = format!(
            "UPDATE control_plane.schedules SET cron = $2, timezone = $3, template = $4, enabled = $5, on_overlap = $6, \
             misfire_grace_seconds = $7, next_fire_at = $8 WHERE name = $1 RETURNING {COLS}"
        );
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &sql,
                &[
                    &name,
                    &cron.trim(),
                    &tz,
                    &template,
                    &p.enabled.unwrap_or(current.enabled),
                    &on_overlap,
                    &p.misfire_grace_seconds
                        .unwrap_or(current.misfire_grace_seconds),
                    &next,
                ],
            )
            .await?
            .ok_or_else(|| ScheduleError::NotFound(name.to_string()))?;
        let after = view(&row)?;
        let payload = json!({ "schedule": name, "changed": changed(&before, &after) });
        record(&*tx, "schedule.updated", actor, payload).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a schedule (its fire log goes with it; its waves stay).
    pub async fn delete(&self, name: &str, actor: &Actor) -> Result<(), ScheduleError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "DELETE FROM control_plane.schedules WHERE name = $1",
                &[&name],
            )
            .await?;
        if n == 0 {
            return Err(ScheduleError::NotFound(name.to_string()));
        }
        record(&*tx, "schedule.deleted", actor, json!({ "schedule": name })).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Writes a schedule event by `actor` (its `X-Drover-Actor` in the payload).
pub async fn record(
    tx: &impl tokio_postgres::GenericClient,
    event_type: &'static str,
    actor: &Actor,
    payload: serde_json::Value,
) -> Result<(), ScheduleError> {
    crate::audit::record(tx, event_type, actor.as_str(), actor.behalf(), payload).await?;
    Ok(())
}

/// The fields a patch changed, with their new values.
fn changed(before: &ScheduleView, after: &ScheduleView) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let mut put = |field: &str, was: serde_json::Value, now: serde_json::Value| {
        if was != now {
            out.insert(field.into(), now);
        }
    };
    put("cron", json!(before.cron), json!(after.cron));
    put("timezone", json!(before.timezone), json!(after.timezone));
    put("template", before.template.clone(), after.template.clone());
    put("enabled", json!(before.enabled), json!(after.enabled));
    put(
        "on_overlap",
        json!(before.on_overlap),
        json!(after.on_overlap),
    );
    put(
        "misfire_grace_seconds",
        json!(before.misfire_grace_seconds),
        json!(after.misfire_grace_seconds),
    );
    serde_json::Value::Object(out)
}
