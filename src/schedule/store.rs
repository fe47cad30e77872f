//! Schedules in the control DB: create, read, change, delete, and the tick handling that
//! fires waves (used by the scheduler loop and by `POST /v1/schedules/{name}/trigger`).

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::cron::{parse_timezone, CronError, CronSpec};
use crate::db::DbError;
use crate::migrate::MigrationSet;
use crate::registry::Actor;
use crate::waves::{WaveError, WaveRequest, WaveStore};

/// Why a schedule operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// No schedule with this name.
    #[error("no schedule '{0}'")]
    NotFound(String),
    /// The name is taken.
    #[error("a schedule named '{0}' already exists")]
    Duplicate(String),
    /// The stored template is not a valid `POST /v1/waves` body any more (e.g. a field
    /// was renamed by an upgrade): nothing may run from it until a person replaces it.
    #[error("the stored template of schedule '{name}' no longer parses ({why}); replace it with PATCH /v1/schedules/{name} and a new template")]
    BrokenTemplate { name: String, why: String },
    /// Creating the tick's wave failed.
    #[error(transparent)]
    Wave(#[from] WaveError),
    /// The control DB failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ScheduleError {
    /// Whether the same request may succeed later: only when the control DB failed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ScheduleError::Wave(e) => e.is_retryable(),
            ScheduleError::Db(e) => e.is_retryable(),
            ScheduleError::Invalid { .. }
            | ScheduleError::NotFound(_)
            | ScheduleError::Duplicate(_)
            | ScheduleError::BrokenTemplate { .. } => false,
        }
    }
}

impl From<tokio_postgres::Error> for ScheduleError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            return ScheduleError::Duplicate(String::new());
        }
        ScheduleError::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for ScheduleError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ScheduleError::Db(DbError::Pool(e))
    }
}

impl From<CronError> for ScheduleError {
    fn from(e: CronError) -> Self {
        let field = if matches!(e, CronError::UnknownTimezone { .. }) {
            "timezone"
        } else {
            "cron"
        };
        ScheduleError::Invalid {
            field,
            message: e.to_string(),
        }
    }
}

/// Body of `POST /v1/schedules`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    #[schema(pattern = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    /// Crontab (5 fields, 0/7 = Sunday), 6/7 fields with seconds, or `@daily` etc.
    pub cron: String,
    /// IANA timezone; default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The `POST /v1/waves` body each tick uses.
    #[serde(default)]
    pub template: Option<WaveRequest>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `skip` (default) or `queue`: what a tick does while the previous wave is unfinished.
    #[serde(default)]
    #[schema(value_type = Option<Overlap>)]
    pub on_overlap: Option<String>,
    /// How late a missed tick may still fire (default 300 s).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub misfire_grace_seconds: Option<i32>,
}

/// Body of `PATCH /v1/schedules/{name}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<WaveRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Overlap>)]
    pub on_overlap: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub misfire_grace_seconds: Option<i32>,
}

/// A schedule as shown to people: the next five fire times in its own timezone.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Schedule)]
pub struct ScheduleView {
    pub name: String,
    pub cron: String,
    /// What the cron crate was given (day-of-week as names, seconds first).
    pub cron_translated: String,
    pub timezone: String,
    #[schema(value_type = Object)]
    pub template: serde_json::Value,
    pub enabled: bool,
    #[schema(value_type = Overlap)]
    pub on_overlap: String,
    pub misfire_grace_seconds: i32,
    #[schema(required)]
    pub next_fire_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub last_fire_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub last_wave_id: Option<Uuid>,
    /// The next five fire times, RFC 3339 in the schedule's timezone.
    #[schema(value_type = Vec<chrono::DateTime<chrono::Utc>>)]
    pub next_fires: Vec<String>,
}

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
        let client = self.pool.get().await?;
        let row = client
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
        Ok(view(&row)?)
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
    pub async fn update(
        &self,
        name: &str,
        p: &SchedulePatch,
    ) -> Result<ScheduleView, ScheduleError> {
        let current = self.get(name).await?;
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
        let client = self.pool.get().await?;
        let row = client
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
        Ok(view(&row)?)
    }

    /// Deletes a schedule (its fire log goes with it; its waves stay).
    pub async fn delete(&self, name: &str) -> Result<(), ScheduleError> {
        let client = self.pool.get().await?;
        let n = client
            .execute(
                "DELETE FROM control_plane.schedules WHERE name = $1",
                &[&name],
            )
            .await?;
        if n == 0 {
            return Err(ScheduleError::NotFound(name.to_string()));
        }
        Ok(())
    }
}

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

/// The schema of `on_overlap` (stored and checked as text).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Overlap {
    Skip,
    Queue,
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

    #[test]
    fn only_control_db_failures_are_retryable() {
        let db = ScheduleError::Db(DbError::Pool(deadpool_postgres::PoolError::Timeout(
            deadpool_postgres::TimeoutType::Wait,
        )));
        let invalid = ScheduleError::Invalid {
            field: "cron",
            message: "bad".into(),
        };

        assert!(db.is_retryable());
        assert!(!invalid.is_retryable());
        assert!(!ScheduleError::NotFound("x".into()).is_retryable());
    }
}
