//! Waves in the control DB: creating a frozen plan, reading progress, operator actions and
//! the state machine's transitions (each under the wave's row lock).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::analysis::{self, AnalysisView};
use super::dry_run::{self, DryRunReport};
use super::plan::WaveRequest;
use super::row::{wave_cols, Wave};
pub use super::state::Counts;
use super::state::{self as machine, Action, Budget, Gate, Snapshot, Transition, WaveState};
use super::timeline;
use super::WaveError;
use crate::migrate::MigrationSet;
use crate::registry::Actor;

/// The schema of [`TargetView::state`] (stored as text).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum TargetState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

/// Progress of one phase.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Phase)]
pub struct PhaseView {
    pub phase: i32,
    /// `canary` or `batch N`.
    pub name: String,
    pub total: i64,
    #[serde(flatten)]
    pub counts: Counts,
}

/// A failed tenant.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Failure)]
pub struct FailureView {
    pub slug: String,
    #[schema(required)]
    pub kind: Option<String>,
    #[schema(required)]
    pub error: Option<String>,
}

/// Everything `GET /v1/waves/{id}` shows.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Wave)]
pub struct WaveView {
    pub id: Uuid,
    pub state: WaveState,
    pub target_version: i32,
    pub current_phase: i32,
    pub phase_count: i32,
    pub counts: Counts,
    pub phases: Vec<PhaseView>,
    pub failures: Vec<FailureView>,
    #[schema(required)]
    pub halt_reason: Option<String>,
    #[schema(required)]
    pub soak_until: Option<DateTime<Utc>>,
    /// Rough seconds left, from the mean tenant duration so far and the concurrency.
    #[schema(required)]
    pub eta_seconds: Option<i64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    #[schema(required)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub finished_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub plan: serde_json::Value,
    /// A dry run: nothing is written to tenants.
    #[serde(default)]
    #[schema(required)]
    pub dry_run: bool,
    /// The dry-run wave whose failed tenants this wave skips.
    #[serde(default)]
    #[schema(required)]
    pub exclude_failed_of: Option<Uuid>,
    /// Who ended the soak early, and when.
    #[serde(default)]
    #[schema(required)]
    pub promoted_by: Option<String>,
    #[serde(default)]
    #[schema(required)]
    pub promoted_at: Option<DateTime<Utc>>,
    /// Skipped tenants with the reason (quarantined, status changed, aborted), first 100.
    #[serde(default)]
    #[schema(required)]
    pub skipped: Vec<FailureView>,
    /// Dry runs: outcomes, failures grouped by error.
    #[serde(default)]
    #[schema(required)]
    pub dry_run_report: Option<DryRunReport>,
    /// Canary analysis: the checks and every measurement.
    #[serde(default)]
    #[schema(required)]
    pub analysis: Option<AnalysisView>,
    /// Every database host with its adaptive concurrency limit.
    #[serde(default)]
    #[schema(required)]
    pub hosts: Vec<super::host_limits::HostLimit>,
}

/// A target row for `GET /v1/waves/{id}/targets`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Target)]
pub struct TargetView {
    pub slug: String,
    pub phase: i32,
    #[schema(value_type = TargetState)]
    pub state: String,
    pub attempts: i32,
    #[schema(required)]
    pub from_version: Option<i32>,
    #[schema(required)]
    pub to_version: Option<i32>,
    #[schema(required)]
    pub error_kind: Option<String>,
    #[schema(required)]
    pub error: Option<String>,
    #[schema(required)]
    pub duration_ms: Option<i64>,
    #[schema(required)]
    pub lease_owner: Option<String>,
    /// Dry runs: code, message, detail and file of a failure, or the files not run;
    /// quarantined targets: the dry run that found them.
    #[serde(default)]
    #[schema(value_type = Option<Object>, required)]
    pub detail: Option<serde_json::Value>,
}

/// Wave SQL over the control pool.
#[derive(Clone)]
pub struct WaveStore {
    pool: Pool,
}

impl WaveStore {
    /// A store over the control pool.
    pub fn new(pool: Pool) -> Self {
        WaveStore { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Freezes a plan and stores the wave with its targets.
    pub async fn create(
        &self,
        req: &WaveRequest,
        set: &MigrationSet,
        actor: &Actor,
    ) -> Result<WaveView, WaveError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let id = Self::create_in(&tx, req, set, actor).await?;
        tx.commit().await?;
        self.view(id).await
    }

    /// [`WaveStore::create`] inside the caller's transaction (the scheduler records the
    /// tick in the same one). Returns the wave's id.
    pub async fn create_in(
        tx: &tokio_postgres::Transaction<'_>,
        req: &WaveRequest,
        set: &MigrationSet,
        actor: &Actor,
    ) -> Result<Uuid, WaveError> {
        super::create::create_in(tx, req, set, actor).await
    }

    /// A wave's timeline, oldest first.
    pub async fn events(&self, id: Uuid) -> Result<Vec<timeline::WaveEvent>, WaveError> {
        const EXISTS: &str = "SELECT 1 FROM control_plane.waves WHERE id = $1";
        let client = self.pool.get().await?;
        if client.query_opt(EXISTS, &[&id]).await?.is_none() {
            return Err(WaveError::NotFound(id.to_string()));
        }
        timeline::events(&**client, id).await
    }

    /// Progress of one wave.
    pub async fn view(&self, id: Uuid) -> Result<WaveView, WaveError> {
        const WAVE: &str = concat!(
            "SELECT ",
            wave_cols!(),
            ", plan FROM control_plane.waves WHERE id = $1"
        );
        const PHASES: &str = "SELECT phase, state, count(*) AS n, avg(duration_ms)::float8 AS avg_ms FROM control_plane.wave_targets \
             WHERE wave_id = $1 GROUP BY 1, 2 ORDER BY 1";
        const FAILURES: &str = "SELECT slug, error_kind, error FROM control_plane.wave_targets \
             WHERE wave_id = $1 AND state = 'failed' ORDER BY slug LIMIT 100";
        const SKIPPED: &str = "SELECT slug, error_kind, error FROM control_plane.wave_targets \
             WHERE wave_id = $1 AND state = 'skipped' ORDER BY slug LIMIT 100";
        let client = self.pool.get().await?;
        let w = client
            .query_opt(WAVE, &[&id])
            .await?
            .ok_or_else(|| WaveError::NotFound(id.to_string()))?;
        let mut phases: BTreeMap<i32, Counts> = BTreeMap::new();
        let mut counts = Counts::default();
        let (mut dur_sum, mut dur_n) = (0.0, 0i64);
        for r in client.query(PHASES, &[&id]).await? {
            let (phase, state, n): (i32, String, i64) =
                (r.try_get("phase")?, r.try_get("state")?, r.try_get("n")?);
            phases.entry(phase).or_default().add(&state, n);
            counts.add(&state, n);
            if let Some(avg) = r.try_get::<_, Option<f64>>("avg_ms")? {
                dur_sum += avg * n as f64;
                dur_n += n;
            }
        }
        let listed = |rows: Vec<tokio_postgres::Row>| -> Result<Vec<FailureView>, WaveError> {
            rows.iter()
                .map(|r| {
                    Ok(FailureView {
                        slug: r.try_get("slug")?,
                        kind: r.try_get("error_kind")?,
                        error: r.try_get("error")?,
                    })
                })
                .collect()
        };
        let failures = listed(client.query(FAILURES, &[&id]).await?)?;
        let skipped = listed(client.query(SKIPPED, &[&id]).await?)?;
        let wave = Wave::from_row(&w)?;
        let dry = wave.dry_run;
        let pg: &tokio_postgres::Client = &client;
        let dry_run_report = if dry {
            Some(dry_run::report(pg, id).await?)
        } else {
            None
        };
        let analysis = analysis::run::view(pg, id).await?;
        let hosts = super::host_limits::view(pg, id).await?;
        let concurrency = wave.max_concurrency;
        let remaining = counts.pending + counts.running;
        let eta_seconds = (dur_n > 0 && remaining > 0).then(|| {
            ((dur_sum / dur_n as f64) * remaining as f64 / concurrency as f64 / 1000.0).ceil()
                as i64
        });
        Ok(WaveView {
            id,
            state: wave.state,
            target_version: wave.target_version,
            current_phase: wave.current_phase,
            phase_count: wave.phase_count,
            plan: w.try_get("plan")?,
            halt_reason: wave.halt_reason,
            soak_until: wave.soak_until,
            created_by: wave.created_by,
            created_at: wave.created_at,
            started_at: wave.started_at,
            finished_at: wave.finished_at,
            phases: phases
                .into_iter()
                .map(|(phase, c)| PhaseView {
                    phase,
                    name: if phase == 0 {
                        "canary".into()
                    } else if dry {
                        "dry run".into()
                    } else {
                        format!("batch {phase}")
                    },
                    total: c.total(),
                    counts: c,
                })
                .collect(),
            counts,
            failures,
            eta_seconds,
            dry_run: dry,
            exclude_failed_of: wave.exclude_failed_of,
            promoted_by: wave.promoted_by,
            promoted_at: wave.promoted_at,
            skipped,
            dry_run_report,
            analysis,
            hosts,
        })
    }

    /// The most recent waves, newest first.
    pub async fn list(&self, limit: i64) -> Result<Vec<WaveView>, WaveError> {
        const SQL: &str = "SELECT id FROM control_plane.waves ORDER BY created_at DESC LIMIT $1";
        let ids: Vec<Uuid> = {
            let client = self.pool.get().await?;
            client
                .query(SQL, &[&limit])
                .await?
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.view(id).await?);
        }
        Ok(out)
    }

    /// Targets of a wave, optionally only those in `state`.
    pub async fn targets(
        &self,
        id: Uuid,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TargetView>, WaveError> {
        const SQL: &str =
            "SELECT slug, phase, state, attempts, from_version, to_version, error_kind, error, \
             duration_ms, lease_owner, detail FROM control_plane.wave_targets \
             WHERE wave_id = $1 AND ($2::text IS NULL OR state = $2) ORDER BY phase, slug LIMIT $3";
        let client = self.pool.get().await?;
        let rows = client.query(SQL, &[&id, &state, &limit]).await?;
        rows.iter()
            .map(|r| {
                Ok(TargetView {
                    slug: r.try_get("slug")?,
                    phase: r.try_get("phase")?,
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    from_version: r.try_get("from_version")?,
                    to_version: r.try_get("to_version")?,
                    error_kind: r.try_get("error_kind")?,
                    error: r.try_get("error")?,
                    duration_ms: r.try_get("duration_ms")?,
                    lease_owner: r.try_get("lease_owner")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }

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
        self.view(id).await
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
            tx.query_opt(FIRST_FAILED_CANARY, &[&id])
                .await?
                .map(|r| -> Result<String, WaveError> {
                    let (slug, error): (String, String) = (r.try_get("slug")?, r.try_get("error")?);
                    Ok(format!("{slug} failed: {error}"))
                })
                .transpose()?
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
    }))
}
