//! Waves in the control DB: creating a frozen plan, reading progress, operator actions and
//! the state machine's transitions (each under the wave's row lock).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::analysis::{self, run::Gate, AnalysisView};
use super::dry_run::{self, DryRunReport};
use super::plan::WaveRequest;
use super::WaveError;
use crate::migrate::MigrationSet;
use crate::registry::Actor;

/// Per-state target counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    pub pending: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl Counts {
    fn add(&mut self, state: &str, n: i64) {
        match state {
            "pending" => self.pending += n,
            "running" => self.running += n,
            "succeeded" => self.succeeded += n,
            "failed" => self.failed += n,
            _ => self.skipped += n,
        }
    }

    /// All targets.
    pub fn total(&self) -> i64 {
        self.pending + self.running + self.succeeded + self.failed + self.skipped
    }
}

/// Progress of one phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseView {
    pub phase: i32,
    /// `canary` or `batch N`.
    pub name: String,
    pub total: i64,
    #[serde(flatten)]
    pub counts: Counts,
}

/// A failed tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureView {
    pub slug: String,
    pub kind: Option<String>,
    pub error: Option<String>,
}

/// Everything `GET /v1/waves/{id}` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaveView {
    pub id: Uuid,
    pub state: String,
    pub target_version: i32,
    pub current_phase: i32,
    pub phase_count: i32,
    pub counts: Counts,
    pub phases: Vec<PhaseView>,
    pub failures: Vec<FailureView>,
    pub halt_reason: Option<String>,
    pub soak_until: Option<DateTime<Utc>>,
    /// Rough seconds left, from the mean tenant duration so far and the concurrency.
    pub eta_seconds: Option<i64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub plan: serde_json::Value,
    /// A dry run: nothing is written to tenants.
    #[serde(default)]
    pub dry_run: bool,
    /// The dry-run wave whose failed tenants this wave skips.
    #[serde(default)]
    pub exclude_failed_of: Option<Uuid>,
    /// Who ended the soak early, and when.
    #[serde(default)]
    pub promoted_by: Option<String>,
    #[serde(default)]
    pub promoted_at: Option<DateTime<Utc>>,
    /// Skipped tenants with the reason (quarantined, status changed, aborted), first 100.
    #[serde(default)]
    pub skipped: Vec<FailureView>,
    /// Dry runs: outcomes, failures grouped by error.
    #[serde(default)]
    pub dry_run_report: Option<DryRunReport>,
    /// Canary analysis: the checks and every measurement.
    #[serde(default)]
    pub analysis: Option<AnalysisView>,
}

/// A target row for `GET /v1/waves/{id}/targets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetView {
    pub slug: String,
    pub phase: i32,
    pub state: String,
    pub attempts: i32,
    pub from_version: Option<i32>,
    pub to_version: Option<i32>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub duration_ms: Option<i64>,
    pub lease_owner: Option<String>,
    /// Dry runs: code, message, detail and file of a failure, or the files not run;
    /// quarantined targets: the dry run that found them.
    #[serde(default)]
    pub detail: Option<serde_json::Value>,
}

/// The states in which a wave is still moving.
pub const ACTIVE_STATES: [&str; 4] = ["pending", "canary", "soaking", "rolling"];

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

    /// Progress of one wave.
    pub async fn view(&self, id: Uuid) -> Result<WaveView, WaveError> {
        const WAVE: &str = "SELECT state, target_version, current_phase, phase_count, plan, halt_reason, soak_until, \
             created_by, created_at, started_at, finished_at, max_concurrency, dry_run, exclude_failed_of, \
             promoted_by, promoted_at FROM control_plane.waves WHERE id = $1";
        const PHASES: &str = "SELECT phase, state, count(*), avg(duration_ms)::float8 FROM control_plane.wave_targets \
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
            let (phase, state, n): (i32, String, i64) = (r.get(0), r.get(1), r.get(2));
            phases.entry(phase).or_default().add(&state, n);
            counts.add(&state, n);
            if let Some(avg) = r.get::<_, Option<f64>>(3) {
                dur_sum += avg * n as f64;
                dur_n += n;
            }
        }
        let listed = |rows: Vec<tokio_postgres::Row>| -> Vec<FailureView> {
            rows.iter()
                .map(|r| FailureView {
                    slug: r.get(0),
                    kind: r.get(1),
                    error: r.get(2),
                })
                .collect()
        };
        let failures = listed(client.query(FAILURES, &[&id]).await?);
        let skipped = listed(client.query(SKIPPED, &[&id]).await?);
        let dry: bool = w.get(12);
        let pg: &tokio_postgres::Client = &client;
        let dry_run_report = if dry {
            Some(dry_run::report(pg, id).await?)
        } else {
            None
        };
        let analysis = analysis::run::view(pg, id).await?;
        let concurrency: i32 = w.get(11);
        let remaining = counts.pending + counts.running;
        let eta_seconds = (dur_n > 0 && remaining > 0).then(|| {
            ((dur_sum / dur_n as f64) * remaining as f64 / concurrency as f64 / 1000.0).ceil()
                as i64
        });
        Ok(WaveView {
            id,
            state: w.get(0),
            target_version: w.get(1),
            current_phase: w.get(2),
            phase_count: w.get(3),
            plan: w.get(4),
            halt_reason: w.get(5),
            soak_until: w.get(6),
            created_by: w.get(7),
            created_at: w.get(8),
            started_at: w.get(9),
            finished_at: w.get(10),
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
            exclude_failed_of: w.get(13),
            promoted_by: w.get(14),
            promoted_at: w.get(15),
            skipped,
            dry_run_report,
            analysis,
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
                .map(|r| r.get(0))
                .collect()
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
        Ok(rows
            .iter()
            .map(|r| TargetView {
                slug: r.get(0),
                phase: r.get(1),
                state: r.get(2),
                attempts: r.get(3),
                from_version: r.get(4),
                to_version: r.get(5),
                error_kind: r.get(6),
                error: r.get(7),
                duration_ms: r.get(8),
                lease_owner: r.get(9),
                detail: r.get(10),
            })
            .collect())
    }

    /// Operator action: pause, resume, abort or promote.
    ///
    /// Resuming a wave that was paused while soaking restarts the soak and its analysis
    /// (the evidence before the pause is not enough, or a person would have promoted);
    /// promote ends the soak at once and starts the first batch, recorded with the actor.
    pub async fn act(
        &self,
        id: Uuid,
        action: &'static str,
        actor: &Actor,
    ) -> Result<WaveView, WaveError> {
        const LOCK: &str = "SELECT state, paused_from, current_phase FROM control_plane.waves WHERE id = $1 FOR UPDATE";
        const SET: &str =
            "UPDATE control_plane.waves SET state = $2, paused_from = $3, halt_reason = $4, \
             finished_at = CASE WHEN $2 = 'aborted' THEN now() ELSE finished_at END WHERE id = $1";
        const RETRY_FAILED: &str = "UPDATE control_plane.wave_targets SET state = 'pending', attempts = 0, \
             next_attempt_at = now(), error = NULL, error_kind = NULL WHERE wave_id = $1 AND state = 'failed'";
        const SKIP_PENDING: &str =
            "UPDATE control_plane.wave_targets SET state = 'skipped', error = 'wave aborted' \
             WHERE wave_id = $1 AND state = 'pending'";
        const RESOAK: &str = "UPDATE control_plane.waves SET soak_until = now() + make_interval(secs => soak_seconds) \
             WHERE id = $1";
        const FIRST_BATCH: &str =
            "SELECT min(phase) FROM control_plane.wave_targets WHERE wave_id = $1 AND phase > 0";
        const PROMOTE: &str = "UPDATE control_plane.waves SET \
             state = CASE WHEN $2::int IS NULL THEN 'completed' ELSE 'rolling' END, \
             current_phase = coalesce($2, current_phase), paused_from = NULL, halt_reason = NULL, \
             promoted_by = $3, promoted_at = now(), \
             finished_at = CASE WHEN $2::int IS NULL THEN now() ELSE finished_at END WHERE id = $1";
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(LOCK, &[&id])
            .await?
            .ok_or_else(|| WaveError::NotFound(id.to_string()))?;
        let (state, paused_from, phase): (String, Option<String>, i32) =
            (row.get(0), row.get(1), row.get(2));
        let illegal = || WaveError::IllegalState {
            id: id.to_string(),
            action,
            state: state.clone(),
        };
        match action {
            "pause" if ACTIVE_STATES.contains(&state.as_str()) => {
                tx.execute(
                    SET,
                    &[&id, &"paused", &Some(state.as_str()), &None::<String>],
                )
                .await?;
            }
            "resume" if state == "paused" => {
                let back = paused_from.unwrap_or_else(|| "pending".into());
                tx.execute(SET, &[&id, &back, &None::<String>, &None::<String>])
                    .await?;
                if back == "soaking" {
                    tx.execute(RESOAK, &[&id]).await?;
                    analysis::run::start_soak(&tx, id).await?;
                }
            }
            "promote"
                if state == "soaking"
                    || (state == "paused" && paused_from.as_deref() == Some("soaking")) =>
            {
                let first: Option<i32> = tx.query_one(FIRST_BATCH, &[&id]).await?.get(0);
                tx.execute(PROMOTE, &[&id, &first, &actor.as_str()]).await?;
            }
            "resume" if state == "halted" => {
                // After a fix: the failed tenants run again; the succeeded ones are never touched.
                tx.execute(RETRY_FAILED, &[&id]).await?;
                let back = if phase == 0 { "canary" } else { "rolling" };
                tx.execute(SET, &[&id, &back, &None::<String>, &None::<String>])
                    .await?;
            }
            "abort"
                if ACTIVE_STATES.contains(&state.as_str())
                    || state == "paused"
                    || state == "halted" =>
            {
                tx.execute(SKIP_PENDING, &[&id]).await?;
                tx.execute(
                    SET,
                    &[
                        &id,
                        &"aborted",
                        &None::<String>,
                        &Some(format!("aborted by {}", actor.as_str())),
                    ],
                )
                .await?;
            }
            _ => return Err(illegal()),
        }
        tx.commit().await?;
        tracing::info!(wave = %id, action, actor = actor.as_str(), "wave {}", match action {
            "promote" => "promoted",
            "pause" => "paused",
            "resume" => "resumed",
            _ => "aborted",
        });
        self.view(id).await
    }

    /// Waves still moving, oldest first.
    pub async fn active(&self) -> Result<Vec<Uuid>, WaveError> {
        const SQL: &str = "SELECT id FROM control_plane.waves \
             WHERE state IN ('pending', 'canary', 'soaking', 'rolling') ORDER BY created_at";
        let client = self.pool.get().await?;
        Ok(client
            .query(SQL, &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// Moves the wave along its state machine if it is due. Skips (returns false) when
    /// another replica holds the wave's row lock right now.
    pub async fn advance(&self, id: Uuid) -> Result<bool, WaveError> {
        const LOCK: &str = "SELECT state, current_phase, phase_count, soak_until <= now(), max_failures, \
             max_failure_percent, soak_seconds, dry_run FROM control_plane.waves WHERE id = $1 FOR UPDATE SKIP LOCKED";
        const PAUSE: &str =
            "UPDATE control_plane.waves SET state = 'paused', paused_from = $2, halt_reason = $3 \
             WHERE id = $1";
        const COUNTS: &str = "SELECT phase, state, count(*) FROM control_plane.wave_targets WHERE wave_id = $1 GROUP BY 1, 2";
        const FIRST_FAILED_CANARY: &str =
            "SELECT slug, coalesce(error, '') FROM control_plane.wave_targets \
             WHERE wave_id = $1 AND phase = 0 AND state = 'failed' ORDER BY finished_at LIMIT 1";
        const SET: &str = "UPDATE control_plane.waves SET state = $2, current_phase = $3, halt_reason = $4, \
             soak_until = CASE WHEN $2 = 'soaking' THEN now() + make_interval(secs => $5::float8) ELSE soak_until END, \
             started_at = coalesce(started_at, now()), \
             finished_at = CASE WHEN $2 = 'completed' THEN now() ELSE finished_at END WHERE id = $1";
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(w) = tx.query_opt(LOCK, &[&id]).await? else {
            return Ok(false);
        };
        let (state, phase, phase_count): (String, i32, i32) = (w.get(0), w.get(1), w.get(2));
        let soak_done: Option<bool> = w.get(3);
        let (max_failures, max_pct, soak, dry_run): (Option<i32>, Option<f64>, i32, bool) =
            (w.get(4), w.get(5), w.get(6), w.get(7));
        let mut per_phase: BTreeMap<i32, Counts> = BTreeMap::new();
        let mut all = Counts::default();
        for r in tx.query(COUNTS, &[&id]).await? {
            let (p, s, n): (i32, String, i64) = (r.get(0), r.get(1), r.get(2));
            per_phase.entry(p).or_default().add(&s, n);
            all.add(&s, n);
        }
        // Open targets of every phase up to `p`: after a halted wave is resumed, failed
        // tenants of earlier batches are pending again and must finish before it moves on.
        let open_through = |p: i32| {
            per_phase
                .range(..=p)
                .map(|(_, c)| c.pending + c.running)
                .sum::<i64>()
        };
        let next_batch = |from: i32| (from + 1..=phase_count).find(|p| per_phase.contains_key(p));
        // The percentage is of the tenants in the phases started so far, not of the whole
        // wave: a failing first batch of a large wave must stop it.
        let started: i64 = per_phase.range(..=phase).map(|(_, c)| c.total()).sum();
        // A dry run never halts: finding every failing tenant is its whole point.
        let over_budget = !dry_run
            && match (max_failures, max_pct) {
                (None, None) => all.failed > 0,
                (n, p) => {
                    n.is_some_and(|n| all.failed > n as i64)
                        || p.is_some_and(|p| {
                            started > 0 && all.failed as f64 * 100.0 / started as f64 > p
                        })
                }
            };
        let canaries = per_phase.get(&0).cloned().unwrap_or_default();
        let gate = match state.as_str() {
            "soaking" => analysis::run::gate(&tx, id, soak_done.unwrap_or(false)).await?,
            _ => Gate::Wait,
        };
        if let Gate::Pause(reason) = &gate {
            tx.execute(PAUSE, &[&id, &"soaking", reason]).await?;
            tx.commit().await?;
            tracing::warn!(wave = %id, reason = %reason, "wave paused by its analysis");
            return Ok(true);
        }
        let to: Option<(&str, i32, Option<String>)> = match state.as_str() {
            "pending" if per_phase.contains_key(&0) => Some(("canary", 0, None)),
            "pending" => Some(match next_batch(0) {
                Some(p) => ("rolling", p, None),
                None => ("completed", phase, None),
            }),
            "canary" if per_phase.get(&0).is_some_and(|c| c.failed > 0) => {
                let r = tx.query_one(FIRST_FAILED_CANARY, &[&id]).await?;
                let (slug, err): (String, String) = (r.get(0), r.get(1));
                Some(("halted", 0, Some(format!("canary {slug} failed: {err}"))))
            }
            // A skipped canary (deleted or provisioning meanwhile) is no evidence: halt.
            "canary" if canaries.skipped > 0 => Some((
                "halted",
                0,
                Some(
                    "a canary tenant was skipped (its status changed); choose canaries again"
                        .into(),
                ),
            )),
            "canary" if open_through(0) == 0 => Some(("soaking", 0, None)),
            "soaking" => match gate {
                Gate::Halt(reason) => Some(("halted", 0, Some(reason))),
                Gate::Pass => Some(match next_batch(0) {
                    Some(p) => ("rolling", p, None),
                    None => ("completed", phase, None),
                }),
                Gate::Wait | Gate::Pause(_) => None,
            },
            "rolling" if over_budget => {
                let budget = match (max_failures, max_pct) {
                    (None, None) => "0".to_string(),
                    (n, p) => [n.map(|n| n.to_string()), p.map(|p| format!("{p}%"))]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" / "),
                };
                Some((
                    "halted",
                    phase,
                    Some(format!(
                        "failure budget spent: {} of {} tenants started so far failed (budget {budget})",
                        all.failed,
                        started
                    )),
                ))
            }
            "rolling" if open_through(phase) == 0 => Some(match next_batch(phase) {
                Some(p) => ("rolling", p, None),
                None if all.pending + all.running == 0 => ("completed", phase, None),
                None => return Ok(false),
            }),
            _ => None,
        };
        let Some((new_state, new_phase, reason)) = to else {
            return Ok(false);
        };
        tx.execute(SET, &[&id, &new_state, &new_phase, &reason, &(soak as f64)])
            .await?;
        if new_state == "soaking" {
            analysis::run::start_soak(&tx, id).await?;
        }
        tx.commit().await?;
        tracing::info!(wave = %id, from = %state, to = new_state, phase = new_phase, reason = reason.as_deref().unwrap_or(""), "wave advanced");
        Ok(true)
    }
}
