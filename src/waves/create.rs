//! Creating a wave: select the tenants, set the quarantined ones aside, assign phases,
//! refuse overlaps, and store the frozen plan with its targets and analysis checks, all
//! in the caller's transaction.

use std::collections::BTreeMap;

use serde_json::json;
use uuid::Uuid;

use super::analysis;
use super::dry_run::{self, QUARANTINED};
use super::plan::{assign_phases, CanarySpec, Candidate, OnDrift, Planned, Settings, WaveRequest};
use super::WaveError;
use crate::migrate::{MigrationSet, SetSource};
use crate::registry::Actor;

/// The live active or suspended tenants the request's selector matches.
async fn candidates(
    tx: &tokio_postgres::Transaction<'_>,
    req: &WaveRequest,
) -> Result<Vec<Candidate>, WaveError> {
    let sel = req.selector.clone().unwrap_or_default();
    let labels = sel
        .labels
        .as_ref()
        .map(|l| serde_json::to_value(l).unwrap_or_default());
    let slugs: Option<Vec<String>> = sel
        .slugs
        .as_ref()
        .map(|v| v.iter().map(|s| s.to_ascii_lowercase()).collect());
    let rows = crate::registry::queries::wave_candidates(
        tx,
        labels.as_ref(),
        slugs.as_deref(),
        sel.billing_plan.as_deref(),
    )
    .await?;
    let candidates = rows
        .iter()
        .map(Candidate::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(wanted) = &slugs {
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|w| !candidates.iter().any(|c| &c.slug == *w))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(WaveError::Invalid {
                field: "selector.slugs",
                message: format!("no active or suspended tenant: {}", missing.join(", ")),
            });
        }
    }
    if candidates.is_empty() {
        return Err(WaveError::Invalid {
            field: "selector",
            message: "matches no active or suspended tenant".into(),
        });
    }
    Ok(candidates)
}

/// Refuses a real wave over tenants another unfinished real wave still covers: the
/// second would bypass the first's canary gate and failure budget. Dry runs write
/// nothing, so they neither block nor are blocked; quarantined targets are not covered.
async fn refuse_overlap(
    tx: &tokio_postgres::Transaction<'_>,
    planned: &[Planned],
) -> Result<(), WaveError> {
    const OVERLAP: &str = "SELECT w.id::text AS wave_id, t.slug FROM control_plane.wave_targets t \
         JOIN control_plane.waves w ON w.id = t.wave_id \
         WHERE w.state IN ('pending', 'canary', 'soaking', 'rolling', 'paused', 'halted') \
           AND NOT w.dry_run AND t.error_kind IS DISTINCT FROM 'quarantined' \
           AND t.tenant_id = ANY($1) ORDER BY t.slug LIMIT 5";
    let ids: Vec<Uuid> = planned.iter().map(|p| p.id).collect();
    let busy = tx.query(OVERLAP, &[&ids]).await?;
    if let Some(first) = busy.first() {
        let slugs = busy
            .iter()
            .map(|r| r.try_get("slug"))
            .collect::<Result<Vec<String>, _>>()?;
        let wave: String = first.try_get("wave_id")?;
        return Err(WaveError::Overlap(format!(
            "tenants {} are in unfinished wave {wave}; let it complete or abort it first",
            slugs.join(", "),
        )));
    }
    Ok(())
}

/// Transaction-scoped advisory lock taken by every real wave creation ("drover" + 3,
/// beside the control-migration lock's + 1 and the tenant migration lock's + 2).
const CREATE_LOCK: &str = "SELECT pg_advisory_xact_lock(7237970105436602371)";

/// What the set and the request say the wave runs: the target version (the set's
/// latest by default), checked to exist; a pushed set is pinned in `tx` first.
async fn target(
    tx: &tokio_postgres::Transaction<'_>,
    req: &WaveRequest,
    set: &MigrationSet,
    set_id: &str,
) -> Result<i32, WaveError> {
    let latest = set.latest().ok_or(WaveError::Invalid {
        field: "target_version",
        message: "no migration set was pushed and the tenant migration directory has no migrations"
            .into(),
    })?;
    // Held until commit: a concurrent DELETE of the set waits, then sees this wave.
    if set.source() == SetSource::Pushed && !crate::sets::published::pin(tx, set_id).await? {
        return Err(WaveError::Invalid {
            field: "migration_set",
            message: format!("migration set {set_id} was deleted"),
        });
    }
    let target = req.target_version.unwrap_or(latest);
    if set.get(target).is_none() {
        return Err(WaveError::Invalid {
            field: "target_version",
            message: format!("no migration V{target}; latest is V{latest}"),
        });
    }
    Ok(target)
}

/// The selected tenants the dry run in `exclude_failed_of` (or `on_drift: skip`) set
/// aside, with each one's reason; and the selected tenants with schema drift.
struct Quarantine {
    tenants: Vec<Candidate>,
    reasons: BTreeMap<Uuid, String>,
    /// Selected tenants with schema drift, by slug (quarantined or not).
    drifted: Vec<Candidate>,
}

/// The reason a quarantined tenant with schema drift is skipped.
const DRIFT_REASON: &str =
    "schema drift: its schema differs from the expected schema of its version (on_drift: skip; see GET /v1/tenants/{slug}/drift)";

/// The selected tenants: those the wave plans, and the quarantined ones.
async fn select(
    tx: &tokio_postgres::Transaction<'_>,
    req: &WaveRequest,
    canary: &CanarySpec,
) -> Result<(Vec<Candidate>, Quarantine), WaveError> {
    let all = candidates(tx, req).await?;
    let mut reasons: BTreeMap<Uuid, String> = match req.exclude_failed_of {
        Some(src) => dry_run::quarantined(tx, src).await?,
        None => BTreeMap::new(),
    };
    let drifted_ids = crate::drift::store::drifted_ids(tx)
        .await
        .map_err(drift_err)?;
    let drifted: Vec<Candidate> = all
        .iter()
        .filter(|c| drifted_ids.contains(&c.id))
        .cloned()
        .collect();
    if req.on_drift == Some(OnDrift::Skip) {
        for c in &drifted {
            reasons.entry(c.id).or_insert_with(|| DRIFT_REASON.into());
        }
    }
    let (quarantined, to_plan): (Vec<Candidate>, Vec<Candidate>) =
        all.into_iter().partition(|c| reasons.contains_key(&c.id));
    if let Some(q) = canary
        .slugs
        .iter()
        .flatten()
        .find(|s| quarantined.iter().any(|c| c.slug.eq_ignore_ascii_case(s)))
    {
        return Err(WaveError::Invalid {
            field: "canary.slugs",
            message: format!(
                "{q} is quarantined (by the dry run in exclude_failed_of, or on_drift: skip)"
            ),
        });
    }
    if to_plan.is_empty() {
        return Err(WaveError::Invalid {
            field: if req.exclude_failed_of.is_some() {
                "exclude_failed_of"
            } else {
                "on_drift"
            },
            message: "every selected tenant is quarantined; nothing left to migrate".into(),
        });
    }
    let quarantine = Quarantine {
        tenants: quarantined,
        reasons,
        drifted,
    };
    Ok((to_plan, quarantine))
}

/// Each planned tenant's phase (0 = canary) and the number of batches. A dry run is one
/// phase: it changes nothing, so there is nothing to gate.
fn phases(
    candidates: Vec<Candidate>,
    canary: &CanarySpec,
    s: &Settings,
) -> Result<(Vec<Planned>, i32), WaveError> {
    let (planned, batches) = if s.run.dry_run {
        let planned = candidates
            .into_iter()
            .map(|c| Planned {
                id: c.id,
                slug: c.slug,
                db_host: c.db_host,
                phase: 1,
            })
            .collect::<Vec<_>>();
        (planned, 1)
    } else {
        assign_phases(candidates, canary, s.batch_size)?
    };
    if !s.analysis.is_empty() && !planned.iter().any(|p| p.phase == 0) {
        return Err(WaveError::Invalid {
            field: "analysis",
            message: "analysis runs on the canaries during the soak, and this wave has none: \
                      flag tenants canary or set canary.slugs, canary.count or canary.percent"
                .into(),
        });
    }
    Ok((planned, batches))
}

/// Inserts the wave's row: the frozen plan and one column per setting the engine's SQL
/// reads (a new wave option that SQL needs is a column here and in `row::wave_cols!`).
async fn insert_wave(
    tx: &tokio_postgres::Transaction<'_>,
    req: &WaveRequest,
    s: &Settings,
    target: i32,
    phase_count: i32,
    plan: &serde_json::Value,
    actor: &Actor,
) -> Result<Uuid, WaveError> {
    const INSERT_WAVE: &str = "INSERT INTO control_plane.waves (target_version, phase_count, plan, batch_size, \
         max_concurrency, max_per_host, max_failures, max_failure_percent, soak_seconds, lock_timeout_ms, \
         statement_timeout_ms, max_attempts, created_by, dry_run, exclude_failed_of) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id";
    Ok(tx
        .query_one(
            INSERT_WAVE,
            &[
                &target,
                &phase_count,
                plan,
                &s.batch_size,
                &s.max_concurrency,
                &s.max_per_host,
                &s.max_failures,
                &s.max_failure_percent,
                &s.soak_seconds,
                &s.run.lock_timeout_ms,
                &s.run.statement_timeout_ms,
                &s.run.max_attempts,
                &actor.as_str(),
                &s.run.dry_run,
                &req.exclude_failed_of,
            ],
        )
        .await?
        .try_get("id")?)
}

/// Inserts the wave's targets: the planned ones pending in their phase, the quarantined
/// ones already skipped in `quarantine_phase` with their reason.
async fn insert_targets(
    tx: &tokio_postgres::Transaction<'_>,
    id: Uuid,
    planned: &[Planned],
    quarantine: &Quarantine,
    quarantine_phase: i32,
    exclude_failed_of: Option<Uuid>,
) -> Result<(), WaveError> {
    const INSERT_TARGETS: &str =
        "INSERT INTO control_plane.wave_targets (wave_id, tenant_id, slug, db_host, phase, host_seq) \
         SELECT $1, t.id, t.slug, t.host, t.phase, \
                row_number() OVER (PARTITION BY t.phase, t.host ORDER BY t.slug) \
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::int[]) AS t(id, slug, host, phase)";
    const INSERT_QUARANTINED: &str = "INSERT INTO control_plane.wave_targets \
         (wave_id, tenant_id, slug, db_host, phase, state, error_kind, error, detail, finished_at) \
         SELECT $1, q.id, q.slug, q.host, $5, 'skipped', $6, q.reason, \
                CASE WHEN q.reason = $9 THEN jsonb_build_object('schema_drift', true) \
                     ELSE jsonb_build_object('dry_run_wave', $7::uuid) END, now() \
         FROM unnest($2::uuid[], $3::text[], $4::text[], $8::text[]) AS q(id, slug, host, reason)";
    let ids: Vec<Uuid> = planned.iter().map(|p| p.id).collect();
    let names: Vec<&str> = planned.iter().map(|p| p.slug.as_str()).collect();
    let hosts: Vec<&str> = planned.iter().map(|p| p.db_host.as_str()).collect();
    let phases: Vec<i32> = planned.iter().map(|p| p.phase).collect();
    tx.execute(INSERT_TARGETS, &[&id, &ids, &names, &hosts, &phases])
        .await?;
    let q = &quarantine.tenants;
    if q.is_empty() {
        return Ok(());
    }
    let q_ids: Vec<Uuid> = q.iter().map(|c| c.id).collect();
    let q_names: Vec<&str> = q.iter().map(|c| c.slug.as_str()).collect();
    let q_hosts: Vec<&str> = q.iter().map(|c| c.db_host.as_str()).collect();
    let q_reasons: Vec<&str> = q
        .iter()
        .map(|c| {
            quarantine
                .reasons
                .get(&c.id)
                .map_or("quarantined", String::as_str)
        })
        .collect();
    tx.execute(
        INSERT_QUARANTINED,
        &[
            &id,
            &q_ids,
            &q_names,
            &q_hosts,
            &quarantine_phase,
            &QUARANTINED,
            &exclude_failed_of,
            &q_reasons,
            &DRIFT_REASON,
        ],
    )
    .await?;
    Ok(())
}

/// The selected tenants with schema drift, by slug (the plan and the `created` event
/// name them whether the wave skips them or not).
fn drifted_slugs(q: &Quarantine) -> Vec<&str> {
    let mut slugs: Vec<&str> = q.drifted.iter().map(|c| c.slug.as_str()).collect();
    slugs.sort_unstable();
    slugs
}

fn drift_err(e: crate::drift::DriftError) -> WaveError {
    match e {
        crate::drift::DriftError::Db(db) => WaveError::Db(db),
        crate::drift::DriftError::Registry(r) => WaveError::Registry(r),
        other => WaveError::Db(crate::db::DbError::Internal(other.to_string())),
    }
}

/// See [`super::WaveStore::create_in`].
pub async fn create_in(
    tx: &tokio_postgres::Transaction<'_>,
    req: &WaveRequest,
    set: &MigrationSet,
    actor: &Actor,
) -> Result<Uuid, WaveError> {
    let s = req.settings()?;
    let set_id = set.id();
    let target = target(tx, req, set, &set_id).await?;
    let canary = req.canary.clone().unwrap_or_default();
    let (to_plan, quarantine) = select(tx, req, &canary).await?;
    let (planned, batches) = phases(to_plan, &canary, &s)?;
    // Quarantined tenants sit in the last batch, already skipped: listed with the
    // reason, never claimed, and never a canary (a skipped canary would halt the wave).
    let quarantine_phase = batches.max(1);
    let phase_count = if quarantine.tenants.is_empty() {
        batches
    } else {
        quarantine_phase
    };
    let ids: Vec<Uuid> = planned.iter().map(|p| p.id).collect();
    let acknowledge = req.acknowledge.clone().unwrap_or_default();
    let lint = super::lint_gate::check(tx, &ids, set, target, &acknowledge).await?;
    let fingerprint: Vec<_> = set
        .fingerprint()
        .into_iter()
        .filter(|(v, _, _)| *v <= target)
        .collect();
    let plan = json!({
        "request": req, "settings": s, "migrations": fingerprint, "tenants": planned.len(),
        "migration_set": set_id, "migration_source": set.source().as_str(),
        "quarantined": quarantine.tenants.len(), "lint": lint,
        "drifted": drifted_slugs(&quarantine),
    });
    if !s.run.dry_run {
        // Serializes real wave creations (a schedule tick and an operator at the same
        // moment): under READ COMMITTED, two overlap checks could each miss the other's
        // uncommitted wave. Held until this transaction ends.
        tx.execute(CREATE_LOCK, &[]).await?;
        refuse_overlap(tx, &planned).await?;
    }
    let id = insert_wave(tx, req, &s, target, phase_count, &plan, actor).await?;
    insert_targets(
        tx,
        id,
        &planned,
        &quarantine,
        quarantine_phase,
        req.exclude_failed_of,
    )
    .await?;
    analysis::run::insert_checks(tx, id, &s.analysis).await?;
    let canaries = planned.iter().filter(|p| p.phase == 0).count();
    let created = json!({
        "target_version": target, "migration_set": set_id, "tenants": planned.len(), "canaries": canaries,
        "batches": batches, "quarantined": quarantine.tenants.len(), "dry_run": s.run.dry_run,
        "on_drift": s.on_drift, "drifted": drifted_slugs(&quarantine),
        "lint_acknowledged": plan["lint"]["acknowledged"].as_array().map(|a| {
            a.iter().map(|f| f["rule"].clone()).collect::<Vec<_>>()
        }),
        "lint_warnings": plan["lint"]["warnings"].as_array().map_or(0, Vec::len),
    });
    super::timeline::record_created(tx, id, actor, created).await?;
    tracing::info!(wave = %id, target, tenants = planned.len(), quarantined = quarantine.tenants.len(), batches,
        dry_run = s.run.dry_run, checks = s.analysis.len(), actor = actor.as_str(), "wave created");
    Ok(id)
}
