//! A wave's row as one struct: every scalar column of `control_plane.waves`, read by name.
//!
//! The wave's view, the state machine's snapshot, operator actions and the claim all
//! select `wave_cols!()` and build a [`Wave`], so a new wave option
//! is a column here (and in the create's insert), not another positional read in each of
//! them. The `plan` document is left out: the claim reads only the parts it needs, and
//! the view selects it beside these columns.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::state::WaveState;
use super::WaveError;
use crate::migrate::SetSource;
use crate::sets::PlanSource;

/// The scalar columns of `control_plane.waves`, in no particular order (read by name).
macro_rules! wave_cols {
    () => {
        "id, state, paused_from, target_version, current_phase, phase_count, batch_size, \
         max_concurrency, max_per_host, max_failures, max_failure_percent, soak_seconds, \
         lock_timeout_ms, statement_timeout_ms, max_attempts, dry_run, exclude_failed_of, \
         soak_until, halt_reason, promoted_by, promoted_at, created_by, created_at, \
         started_at, finished_at"
    };
}
pub(crate) use wave_cols;

/// The columns [`Wave::from_row`] reads (a test checks every scalar column of the table is one).
pub const COLUMNS: &str = wave_cols!();

/// One wave's columns (see `wave_cols!`).
#[derive(Debug, Clone, PartialEq)]
pub struct Wave {
    pub id: Uuid,
    pub state: WaveState,
    /// The state a paused wave returns to on resume.
    pub paused_from: Option<WaveState>,
    pub target_version: i32,
    /// 0 while canaries run; then the batch being rolled out, 1..phase_count.
    pub current_phase: i32,
    pub phase_count: i32,
    pub batch_size: i32,
    pub max_concurrency: i32,
    pub max_per_host: i32,
    pub max_failures: Option<i32>,
    pub max_failure_percent: Option<f64>,
    pub soak_seconds: i32,
    pub lock_timeout_ms: i32,
    pub statement_timeout_ms: i32,
    pub max_attempts: i32,
    /// A dry run: run and roll back, record nothing on the tenants.
    pub dry_run: bool,
    /// The dry run whose failed tenants this wave skips.
    pub exclude_failed_of: Option<Uuid>,
    pub soak_until: Option<DateTime<Utc>>,
    pub halt_reason: Option<String>,
    pub promoted_by: Option<String>,
    pub promoted_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Wave {
    /// Reads the `wave_cols!()` columns of `row` by name.
    pub fn from_row(row: &Row) -> Result<Wave, WaveError> {
        Ok(Wave {
            id: row.try_get("id")?,
            state: parse_state(row.try_get("state")?)?,
            paused_from: row
                .try_get::<_, Option<String>>("paused_from")?
                .map(parse_state)
                .transpose()?,
            target_version: row.try_get("target_version")?,
            current_phase: row.try_get("current_phase")?,
            phase_count: row.try_get("phase_count")?,
            batch_size: row.try_get("batch_size")?,
            max_concurrency: row.try_get("max_concurrency")?,
            max_per_host: row.try_get("max_per_host")?,
            max_failures: row.try_get("max_failures")?,
            max_failure_percent: row.try_get("max_failure_percent")?,
            soak_seconds: row.try_get("soak_seconds")?,
            lock_timeout_ms: row.try_get("lock_timeout_ms")?,
            statement_timeout_ms: row.try_get("statement_timeout_ms")?,
            max_attempts: row.try_get("max_attempts")?,
            dry_run: row.try_get("dry_run")?,
            exclude_failed_of: row.try_get("exclude_failed_of")?,
            soak_until: row.try_get("soak_until")?,
            halt_reason: row.try_get("halt_reason")?,
            promoted_by: row.try_get("promoted_by")?,
            promoted_at: row.try_get("promoted_at")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

/// A stored state; one drover does not know is a corrupt row.
pub(super) fn parse_state(s: String) -> Result<WaveState, WaveError> {
    s.parse().map_err(|e: super::state::UnknownState| {
        WaveError::Db(crate::db::DbError::Corrupt {
            what: "a wave's state".into(),
            source: Box::new(e),
        })
    })
}

/// The plan's members [`plan_source_from_row`] reads, for a select list.
macro_rules! plan_source_cols {
    () => {
        "plan->>'migration_set' AS set_id, plan->>'migration_source' AS source, \
         plan->'migrations' AS migrations"
    };
}
pub(crate) use plan_source_cols;

/// Where a wave's files come from, read from the `plan_source_cols!()` of `r` by name:
/// what the catalog is asked for. Plans made before sets existed name neither a source
/// nor a set: they ran the directory's files.
pub fn plan_source_from_row(r: &Row) -> Result<PlanSource, tokio_postgres::Error> {
    let source: Option<String> = r.try_get("source")?;
    let set_id: Option<String> = r.try_get("set_id")?;
    let pushed = SetSource::Pushed.as_str();
    Ok(match (source, set_id) {
        (Some(s), Some(id)) if s == pushed => PlanSource::Pushed(id),
        _ => PlanSource::Directory(r.try_get::<_, Option<_>>("migrations")?.unwrap_or_default()),
    })
}

/// Where wave `id`'s files come from (`None`: no such wave).
pub async fn plan_source(
    client: &impl tokio_postgres::GenericClient,
    id: Uuid,
) -> Result<Option<PlanSource>, tokio_postgres::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        plan_source_cols!(),
        " FROM control_plane.waves WHERE id = $1"
    );
    match client.query_opt(SQL, &[&id]).await? {
        Some(r) => Ok(Some(plan_source_from_row(&r)?)),
        None => Ok(None),
    }
}
