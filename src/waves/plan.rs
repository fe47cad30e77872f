//! Turning a `POST /v1/waves` request into a frozen plan: which tenants, which of them are
//! canaries, which batch each of the rest is in. Pure functions; the SQL is in `store`.
//!
//! Adding a wave option (say `max_lag_seconds`):
//! - a [`WaveRequest`] field with its serde and schema attributes (the API document and
//!   schedule templates, which are stored requests, follow from it);
//! - its effective value in [`Settings`], defaulted and range-checked in
//!   [`WaveRequest::settings`] (it is then frozen into the plan as `plan.settings`);
//! - where the engine reads it: from the plan (`plan->'settings'`, as the claim reads
//!   `lock_retries`), which needs nothing more; or, when the engine's SQL needs it (claims,
//!   budgets), a column: a control migration adding it to `control_plane.waves`,
//!   `wave_cols!` and [`super::row::Wave`] (a test checks every column is read), and the
//!   insert in `create.rs` (`insert_wave`);
//! - `drover waves start`'s flag, if operators set it from the command line
//!   (`cli/waves.rs`: `StartArgs` and the request it builds);
//! - the README's `POST /v1/waves` row and the wave options it describes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::analysis::{validate as validate_checks, Check, CheckSpec};
use super::run_settings::RunSettings;
use super::WaveError;
use crate::migrate::LockRetries;

/// Which tenants a wave covers. Empty = every live active or suspended tenant.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Tenants carrying all these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Exactly these tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slugs: Option<Vec<String>>,
    /// Tenants on this billing plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_plan: Option<String>,
}

/// Which tenants go first. Empty = the selected tenants flagged `canary`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    /// These tenants (must be selected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slugs: Option<Vec<String>>,
    /// N tenants, chosen deterministically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// N % of the selected tenants (rounded up), chosen deterministically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub percent: Option<f64>,
}

/// Body of `POST /v1/waves`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaveRequest {
    /// The files to run: a pushed set's id or label, or `latest` (the default: the newest
    /// pushed set, else this replica's migrations directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1)]
    pub migration_set: Option<String>,
    /// Version to reach; default the latest migration of the set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// Tenants per batch (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100000)]
    pub batch_size: Option<i32>,
    /// Tenants migrated at once across all replicas (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_concurrency: Option<i32>,
    /// Tenants migrated at once on one database host (default: max_concurrency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_per_host: Option<i32>,
    /// Halt when more than this many tenants failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub max_failures: Option<i32>,
    /// Halt when more than this percentage of the wave failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100)]
    pub max_failure_percent: Option<f64>,
    /// Wait after the canaries succeeded (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 604800)]
    pub soak_seconds: Option<i32>,
    /// Per-tenant `lock_timeout` (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 3600000)]
    pub lock_timeout_ms: Option<i32>,
    /// Per-tenant `statement_timeout` (default 600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400000)]
    pub statement_timeout_ms: Option<i32>,
    /// Attempts per tenant for retryable errors (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_attempts: Option<i32>,
    /// Run every pending migration in a transaction that is always rolled back, and
    /// report who would fail and why. No canaries, soak or failure budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Skip (quarantine) the tenants this completed dry-run wave found failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_failed_of: Option<Uuid>,
    /// Checks evaluated during the soak; they decide whether the batches start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 20)]
    pub analysis: Option<Vec<CheckSpec>>,
    /// Lint rules whose error findings this wave accepts (stored in the plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge: Option<Vec<String>>,
    /// How a tenant retries lock timeouts before giving up (default 3 short attempts
    /// from 100 ms, pauses from 250 ms, both doubling; then one at `lock_timeout_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_retries: Option<LockRetries>,
    /// What to do with selected tenants that have schema drift (their last fingerprint
    /// differs from the expected schema of their version): `proceed` (the default;
    /// they are named in the plan and the `created` event) or `skip` (quarantined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_drift: Option<OnDrift>,
}

/// A wave's answer to schema drift among its tenants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnDrift {
    /// Migrate them like the others (they are named in the plan).
    #[default]
    Proceed,
    /// Leave them untouched: skipped, quarantined like a dry run's failures.
    Skip,
}

/// The effective settings, every default filled in and checked.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub batch_size: i32,
    pub max_concurrency: i32,
    pub max_per_host: i32,
    pub max_failures: Option<i32>,
    pub max_failure_percent: Option<f64>,
    pub soak_seconds: i32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub analysis: Vec<Check>,
    pub on_drift: OnDrift,
    /// What the runners read: stored flattened in `plan.settings`, read back whole by
    /// the claim.
    #[serde(flatten)]
    pub run: RunSettings,
}

fn positive(field: &'static str, v: Option<i32>, default: i32, max: i32) -> Result<i32, WaveError> {
    let v = v.unwrap_or(default);
    if v < 1 || v > max {
        return Err(WaveError::Invalid {
            field,
            message: format!("must be between 1 and {max}"),
        });
    }
    Ok(v)
}

impl WaveRequest {
    /// Fills defaults and checks ranges.
    pub fn settings(&self) -> Result<Settings, WaveError> {
        let max_concurrency = positive("max_concurrency", self.max_concurrency, 10, 1000)?;
        if self.max_failures.is_some_and(|n| n < 0) {
            return Err(WaveError::Invalid {
                field: "max_failures",
                message: "must be 0 or more".into(),
            });
        }
        if self
            .max_failure_percent
            .is_some_and(|p| !(0.0..=100.0).contains(&p))
        {
            return Err(WaveError::Invalid {
                field: "max_failure_percent",
                message: "must be between 0 and 100".into(),
            });
        }
        let dry_run = self.dry_run.unwrap_or(false);
        let analysis = validate_checks(self.analysis.as_deref().unwrap_or_default())?;
        if dry_run && !analysis.is_empty() {
            return Err(WaveError::Invalid {
                field: "analysis",
                message: "a dry run has no soak to analyse; analysis applies to real waves".into(),
            });
        }
        let soak_seconds = self.soak_seconds.unwrap_or(30);
        if !(0..=7 * 86400).contains(&soak_seconds) {
            return Err(WaveError::Invalid {
                field: "soak_seconds",
                message: "must be between 0 and 604800".into(),
            });
        }
        let lock_retries = self.lock_retries.unwrap_or_default();
        if let Some(message) = lock_retries.invalid() {
            return Err(WaveError::Invalid {
                field: "lock_retries",
                message: message.into(),
            });
        }
        Ok(Settings {
            batch_size: positive("batch_size", self.batch_size, 50, 100_000)?,
            max_concurrency,
            max_per_host: positive("max_per_host", self.max_per_host, max_concurrency, 1000)?,
            max_failures: self.max_failures,
            max_failure_percent: self.max_failure_percent,
            soak_seconds,
            analysis,
            on_drift: self.on_drift.unwrap_or_default(),
            run: RunSettings {
                lock_timeout_ms: positive(
                    "lock_timeout_ms",
                    self.lock_timeout_ms,
                    5_000,
                    3_600_000,
                )?,
                statement_timeout_ms: positive(
                    "statement_timeout_ms",
                    self.statement_timeout_ms,
                    600_000,
                    86_400_000,
                )?,
                max_attempts: positive("max_attempts", self.max_attempts, 5, 100)?,
                dry_run,
                lock_retries,
            },
        })
    }
}

/// A tenant a wave may cover, as read at plan time.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: Uuid,
    pub slug: String,
    pub db_host: String,
    pub canary: bool,
}

impl Candidate {
    /// Reads `id`, `slug`, `db_host` and `canary` by name (the rows of
    /// [`crate::registry::queries::wave_candidates`]).
    pub fn from_row(row: &tokio_postgres::Row) -> Result<Candidate, tokio_postgres::Error> {
        Ok(Candidate {
            id: row.try_get("id")?,
            slug: row.try_get("slug")?,
            db_host: row.try_get("db_host")?,
            canary: row.try_get("canary")?,
        })
    }
}

/// A planned target: the tenant and its phase (0 = canary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub id: Uuid,
    pub slug: String,
    pub db_host: String,
    pub phase: i32,
}

/// FNV-1a of the slug: a stable, well-mixed order for choosing canaries, so "3 canaries"
/// picks the same tenants every time but not simply the first three alphabetically.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Assigns phases: canaries to 0, the rest in slug order to batches 1..n.
/// `candidates` must already be the selected tenants. Returns targets and the batch count.
pub fn assign_phases(
    mut candidates: Vec<Candidate>,
    canary: &CanarySpec,
    batch_size: i32,
) -> Result<(Vec<Planned>, i32), WaveError> {
    candidates.sort_by(|a, b| a.slug.cmp(&b.slug));
    let chosen: BTreeSet<String> = if let Some(slugs) = &canary.slugs {
        let wanted: BTreeSet<String> = slugs.iter().map(|s| s.to_ascii_lowercase()).collect();
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|s| !candidates.iter().any(|c| &&c.slug == s))
            .collect();
        if !missing.is_empty() {
            return Err(WaveError::Invalid {
                field: "canary.slugs",
                message: format!(
                    "not among the selected tenants: {}",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        wanted
    } else if canary.count.is_some() || canary.percent.is_some() {
        let n = match (canary.count, canary.percent) {
            (Some(n), _) => n as usize,
            (None, Some(p)) if (0.0..=100.0).contains(&p) => {
                (candidates.len() as f64 * p / 100.0).ceil() as usize
            }
            _ => {
                return Err(WaveError::Invalid {
                    field: "canary.percent",
                    message: "must be between 0 and 100".into(),
                })
            }
        };
        let mut by_hash: Vec<&Candidate> = candidates.iter().collect();
        by_hash.sort_by_key(|c| (stable_hash(&c.slug), c.slug.clone()));
        by_hash.iter().take(n).map(|c| c.slug.clone()).collect()
    } else {
        candidates
            .iter()
            .filter(|c| c.canary)
            .map(|c| c.slug.clone())
            .collect()
    };
    let mut planned = Vec::with_capacity(candidates.len());
    let mut batch_index = 0usize;
    for c in candidates {
        let phase = if chosen.contains(&c.slug) {
            0
        } else {
            batch_index += 1;
            ((batch_index - 1) / batch_size as usize) as i32 + 1
        };
        planned.push(Planned {
            id: c.id,
            slug: c.slug,
            db_host: c.db_host,
            phase,
        });
    }
    let batches = planned.iter().map(|p| p.phase).max().unwrap_or(0);
    Ok((planned, batches))
}

#[cfg(test)]
mod tests;
