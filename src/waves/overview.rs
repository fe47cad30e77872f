//! Wave reads for overviews (the console's pages; the API has no endpoint for them): a
//! page of waves with their progress, the halted ones, one tenant's history in waves,
//! a wave's failures grouped by error, and the states of a few waves. Rows are read by
//! column name.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::redact::{self, Audience};
use super::row::parse_state;
use super::state::WaveState;
use super::{WaveError, WaveStore};

/// One wave with its progress over all its targets.
#[derive(Debug, Clone)]
pub struct WaveSummary {
    pub id: Uuid,
    pub state: WaveState,
    pub target_version: i32,
    pub dry_run: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub total: i64,
    /// Targets succeeded, failed or skipped.
    pub finished: i64,
    pub failed: i64,
}

/// One tenant's part in one wave.
#[derive(Debug, Clone)]
pub struct TenantWave {
    pub wave_id: Uuid,
    pub wave_state: String,
    pub dry_run: bool,
    pub target_version: i32,
    pub phase: i32,
    pub state: String,
    pub attempts: i32,
    pub from_version: Option<i32>,
    pub to_version: Option<i32>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Failed targets of a wave that share an error.
#[derive(Debug, Clone)]
pub struct FailureGroup {
    pub kind: Option<String>,
    pub error: String,
    /// Every failed target with this error (the slugs may be fewer).
    pub count: i64,
    pub slugs: Vec<String>,
}

impl WaveStore {
    /// Up to `limit` waves created before the wave `before` (from the newest when `None`),
    /// newest first, each with its progress.
    pub async fn summaries(
        &self,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<WaveSummary>, WaveError> {
        // Progress from one aggregate per wave over its targets (index on wave_id first).
        const SQL: &str = "SELECT w.id, w.state, w.target_version, w.dry_run, w.created_by, \
               w.created_at, w.updated_at, coalesce(c.total, 0) AS total, \
               coalesce(c.finished, 0) AS finished, coalesce(c.failed, 0) AS failed \
             FROM control_plane.waves w \
             LEFT JOIN LATERAL (SELECT count(*) AS total, \
                 count(*) FILTER (WHERE t.state IN ('succeeded', 'failed', 'skipped')) AS finished, \
                 count(*) FILTER (WHERE t.state = 'failed') AS failed \
               FROM control_plane.wave_targets t WHERE t.wave_id = w.id) c ON true \
             WHERE $1::uuid IS NULL OR (w.created_at, w.id) < \
               (SELECT b.created_at, b.id FROM control_plane.waves b WHERE b.id = $1) \
             ORDER BY w.created_at DESC, w.id DESC LIMIT $2";
        let client = self.pool().get().await.map_err(crate::db::DbError::from)?;
        client
            .query(SQL, &[&before, &limit])
            .await?
            .iter()
            .map(|r| {
                Ok(WaveSummary {
                    id: r.try_get("id")?,
                    state: parse_state(r.try_get("state")?)?,
                    target_version: r.try_get("target_version")?,
                    dry_run: r.try_get("dry_run")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                    total: r.try_get("total")?,
                    finished: r.try_get("finished")?,
                    failed: r.try_get("failed")?,
                })
            })
            .collect()
    }

    /// Ids of the `limit` most recent halted waves (they wait for a person).
    pub async fn halted(&self, limit: i64) -> Result<Vec<Uuid>, WaveError> {
        const SQL: &str = "SELECT id FROM control_plane.waves WHERE state = 'halted' \
             ORDER BY created_at DESC LIMIT $1";
        let client = self.pool().get().await.map_err(crate::db::DbError::from)?;
        client
            .query(SQL, &[&limit])
            .await?
            .iter()
            .map(|r| r.try_get("id").map_err(WaveError::from))
            .collect()
    }

    /// The waves the tenant `tenant_id` was a target of, newest first, its errors as
    /// `audience` reads them.
    pub async fn of_tenant(
        &self,
        tenant_id: Uuid,
        limit: i64,
        audience: Audience,
    ) -> Result<Vec<TenantWave>, WaveError> {
        const SQL: &str = "SELECT t.wave_id, w.state AS wave_state, w.dry_run, w.target_version, \
             t.phase, t.state, t.attempts, t.from_version, t.to_version, t.error_kind, t.error, \
             t.detail->>'public_error' AS public_error, w.created_at \
             FROM control_plane.wave_targets t JOIN control_plane.waves w ON w.id = t.wave_id \
             WHERE t.tenant_id = $1 ORDER BY w.created_at DESC LIMIT $2";
        let client = self.pool().get().await.map_err(crate::db::DbError::from)?;
        client
            .query(SQL, &[&tenant_id, &limit])
            .await?
            .iter()
            .map(|r| {
                let kind: Option<String> = r.try_get("error_kind")?;
                let error: Option<String> = r.try_get("error")?;
                let public: Option<String> = r.try_get("public_error")?;
                Ok(TenantWave {
                    wave_id: r.try_get("wave_id")?,
                    wave_state: r.try_get("wave_state")?,
                    dry_run: r.try_get("dry_run")?,
                    target_version: r.try_get("target_version")?,
                    phase: r.try_get("phase")?,
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    from_version: r.try_get("from_version")?,
                    to_version: r.try_get("to_version")?,
                    error: error.map(|e| {
                        redact::error_for(audience, kind.as_deref(), &e, public.as_deref())
                    }),
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(WaveError::from)
    }

    /// The wave's failed targets grouped by error kind and message, largest group first:
    /// at most `groups` groups, each naming at most `slugs` tenants (by slug). Viewers'
    /// groups are by the public form (`redact`), which many server messages share.
    pub async fn failure_groups(
        &self,
        id: Uuid,
        groups: i64,
        slugs: i32,
        audience: Audience,
    ) -> Result<Vec<FailureGroup>, WaveError> {
        const SQL: &str = "SELECT error_kind, coalesce(error, '') AS error, count(*) AS n, \
               min(detail->>'public_error') AS public_error, \
               (array_agg(slug ORDER BY slug))[1:$2] AS slugs \
             FROM control_plane.wave_targets WHERE wave_id = $1 AND state = 'failed' \
             GROUP BY error_kind, coalesce(error, '') ORDER BY n DESC, error LIMIT $3";
        let client = self.pool().get().await.map_err(crate::db::DbError::from)?;
        let mut out: Vec<FailureGroup> = Vec::new();
        for r in client.query(SQL, &[&id, &slugs, &groups]).await? {
            let kind: Option<String> = r.try_get("error_kind")?;
            let (error, public): (String, Option<String>) =
                (r.try_get("error")?, r.try_get("public_error")?);
            let error = redact::error_for(audience, kind.as_deref(), &error, public.as_deref());
            let (count, names): (i64, Vec<String>) = (r.try_get("n")?, r.try_get("slugs")?);
            match out.iter_mut().find(|g| g.kind == kind && g.error == error) {
                Some(g) => {
                    g.count += count;
                    g.slugs.extend(names);
                    g.slugs.sort();
                    g.slugs.truncate(usize::try_from(slugs).unwrap_or(0));
                }
                None => out.push(FailureGroup {
                    kind,
                    error,
                    count,
                    slugs: names,
                }),
            }
        }
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.error.cmp(&b.error)));
        Ok(out)
    }

    /// The state a paused wave returns to on resume (`None` when not paused, unknown, or
    /// no such wave).
    pub async fn paused_from(&self, id: Uuid) -> Result<Option<WaveState>, WaveError> {
        const SQL: &str = "SELECT paused_from FROM control_plane.waves WHERE id = $1";
        let client = self.pool().get().await.map_err(crate::db::DbError::from)?;
        Ok(match client.query_opt(SQL, &[&id]).await? {
            Some(r) => r
                .try_get::<_, Option<String>>("paused_from")?
                .and_then(|p| p.parse().ok()),
            None => None,
        })
    }

    /// The current state of each of `ids` that exists and has a state drover knows.
    pub async fn states(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, WaveState>, WaveError> {
        const SQL: &str = "SELECT id, state FROM control_plane.waves WHERE id = ANY($1)";
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let client = self.pool().get().await.map_err(crate::db::DbError::from)?;
        let mut out = HashMap::new();
        for r in client.query(SQL, &[&ids]).await? {
            let state: String = r.try_get("state")?;
            if let Ok(state) = state.parse() {
                out.insert(r.try_get("id")?, state);
            }
        }
        Ok(out)
    }
}

/// Whether the wave `id` exists and is not finished (completed or aborted), read with
/// `client` (the scheduler asks inside its tick's transaction). A state drover does not
/// know counts as unfinished: starting another wave beside it is the riskier guess.
pub async fn is_unfinished(
    client: &impl tokio_postgres::GenericClient,
    id: Uuid,
) -> Result<bool, WaveError> {
    const SQL: &str = "SELECT state FROM control_plane.waves WHERE id = $1";
    Ok(match client.query_opt(SQL, &[&id]).await? {
        Some(r) => r
            .try_get::<_, String>("state")?
            .parse()
            .map_or(true, |s: WaveState| !s.is_finished()),
        None => false,
    })
}

/// Ids (as text, oldest first) of the unfinished waves that run the pushed migration set
/// `set_id`: deleting the set is refused while there are any (read in its transaction).
pub async fn unfinished_on_pushed_set(
    client: &impl tokio_postgres::GenericClient,
    set_id: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    const SQL: &str = "SELECT id::text AS id FROM control_plane.waves \
         WHERE plan->>'migration_set' = $1 AND plan->>'migration_source' = 'pushed' \
         AND state IN ('pending', 'canary', 'soaking', 'rolling', 'paused', 'halted') \
         ORDER BY created_at";
    client
        .query(SQL, &[&set_id])
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect()
}
