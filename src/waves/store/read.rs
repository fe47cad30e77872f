//! Reading waves: one wave's progress (with its dry-run report, analysis and host
//! limits), the recent waves, and a wave's targets.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{FailureView, PhaseView, TargetView, WaveStore, WaveView};
use crate::waves::analysis;
use crate::waves::dry_run;
use crate::waves::redact::{self, Audience};
use crate::waves::row::{wave_cols, Wave};
use crate::waves::state::Counts;
use crate::waves::WaveError;

impl WaveStore {
    /// Progress of one wave, its failures' errors as `audience` reads them.
    pub async fn view(&self, id: Uuid, audience: Audience) -> Result<WaveView, WaveError> {
        const WAVE: &str = concat!(
            "SELECT ",
            wave_cols!(),
            ", plan FROM control_plane.waves WHERE id = $1"
        );
        const PHASES: &str = "SELECT phase, state, count(*) AS n, avg(duration_ms)::float8 AS avg_ms FROM control_plane.wave_targets \
             WHERE wave_id = $1 GROUP BY 1, 2 ORDER BY 1";
        const FAILURES: &str = "SELECT slug, error_kind, error, detail->>'public_error' AS public_error FROM control_plane.wave_targets \
             WHERE wave_id = $1 AND state = 'failed' ORDER BY slug LIMIT 100";
        const SKIPPED: &str = "SELECT slug, error_kind, error, detail->>'public_error' AS public_error FROM control_plane.wave_targets \
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
                    let kind: Option<String> = r.try_get("error_kind")?;
                    let error: Option<String> = r.try_get("error")?;
                    let public: Option<String> = r.try_get("public_error")?;
                    Ok(FailureView {
                        slug: r.try_get("slug")?,
                        error: error.map(|e| {
                            redact::error_for(audience, kind.as_deref(), &e, public.as_deref())
                        }),
                        kind,
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
            Some(dry_run::report(pg, id, audience).await?)
        } else {
            None
        };
        let analysis = analysis::run::view(pg, id).await?;
        let hosts = crate::waves::host_limits::view(pg, id).await?;
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
    pub async fn list(&self, limit: i64, audience: Audience) -> Result<Vec<WaveView>, WaveError> {
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
            out.push(self.view(id, audience).await?);
        }
        Ok(out)
    }

    /// Targets of a wave, optionally only those in `state`, their errors as `audience`
    /// reads them.
    pub async fn targets(
        &self,
        id: Uuid,
        state: Option<&str>,
        limit: i64,
        audience: Audience,
    ) -> Result<Vec<TargetView>, WaveError> {
        const SQL: &str =
            "SELECT slug, phase, state, attempts, from_version, to_version, error_kind, error, \
             duration_ms, lease_owner, detail FROM control_plane.wave_targets \
             WHERE wave_id = $1 AND ($2::text IS NULL OR state = $2) ORDER BY phase, slug LIMIT $3";
        let client = self.pool.get().await?;
        let rows = client.query(SQL, &[&id, &state, &limit]).await?;
        rows.iter()
            .map(|r| {
                let kind: Option<String> = r.try_get("error_kind")?;
                let error: Option<String> = r.try_get("error")?;
                let detail: Option<serde_json::Value> = r.try_get("detail")?;
                let public = redact::stored_public(detail.as_ref());
                let error = error.map(|e| redact::error_for(audience, kind.as_deref(), &e, public));
                Ok(TargetView {
                    slug: r.try_get("slug")?,
                    phase: r.try_get("phase")?,
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    from_version: r.try_get("from_version")?,
                    to_version: r.try_get("to_version")?,
                    error_kind: kind,
                    error,
                    duration_ms: r.try_get("duration_ms")?,
                    lease_owner: r.try_get("lease_owner")?,
                    detail: redact::detail_for(audience, detail),
                })
            })
            .collect()
    }
}
