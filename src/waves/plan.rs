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
mod tests {
    use super::*;

    fn cands(n: usize, canary: &[usize]) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                id: Uuid::from_u128(i as u128 + 1),
                slug: format!("t{i:02}"),
                db_host: "db1".into(),
                canary: canary.contains(&i),
            })
            .collect()
    }

    #[test]
    fn flagged_canaries_go_first_and_the_rest_fill_batches_in_slug_order() {
        let (plan, batches) = assign_phases(cands(7, &[3]), &CanarySpec::default(), 3).unwrap();

        assert_eq!(batches, 2);
        let phase = |s: &str| plan.iter().find(|p| p.slug == s).unwrap().phase;
        assert_eq!(phase("t03"), 0);
        assert_eq!(
            [phase("t00"), phase("t01"), phase("t02"), phase("t04")],
            [1, 1, 1, 2]
        );
        assert_eq!([phase("t05"), phase("t06")], [2, 2]);
    }

    #[test]
    fn canary_count_and_percent_are_deterministic() {
        let spec = CanarySpec {
            count: Some(2),
            ..Default::default()
        };
        let a = assign_phases(cands(20, &[]), &spec, 5).unwrap().0;
        let b = assign_phases(cands(20, &[]), &spec, 5).unwrap().0;
        let pct = assign_phases(
            cands(20, &[]),
            &CanarySpec {
                percent: Some(10.0),
                ..Default::default()
            },
            5,
        )
        .unwrap()
        .0;

        let canaries = |p: &[Planned]| {
            p.iter()
                .filter(|t| t.phase == 0)
                .map(|t| t.slug.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(canaries(&a).len(), 2);
        assert_eq!(canaries(&a), canaries(&b));
        assert_eq!(canaries(&pct), canaries(&a));
    }

    #[test]
    fn explicit_canaries_must_be_selected() {
        let spec = CanarySpec {
            slugs: Some(vec!["nope".into()]),
            ..Default::default()
        };

        let err = assign_phases(cands(3, &[]), &spec, 5).unwrap_err();

        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn defaults_fill_in_and_ranges_are_checked() {
        let s = WaveRequest::default().settings().unwrap();
        assert_eq!(
            (
                s.batch_size,
                s.max_concurrency,
                s.max_per_host,
                s.run.max_attempts
            ),
            (50, 10, 10, 5)
        );
        let bad = WaveRequest {
            batch_size: Some(0),
            ..Default::default()
        };
        assert!(bad.settings().is_err());
    }

    /// The field a request is refused for, or `None` when it is accepted.
    fn refused(req: WaveRequest) -> Option<&'static str> {
        match req.settings() {
            Ok(_) => None,
            Err(WaveError::Invalid { field, .. }) => Some(field),
            Err(e) => panic!("not a validation error: {e}"),
        }
    }

    #[test]
    fn each_bounded_setting_accepts_1_and_its_maximum_and_refuses_one_beyond() {
        type Set = fn(&mut WaveRequest, i32);
        let fields: [(&str, i32, Set); 6] = [
            ("batch_size", 100_000, |r, v| r.batch_size = Some(v)),
            ("max_concurrency", 1000, |r, v| r.max_concurrency = Some(v)),
            ("max_per_host", 1000, |r, v| r.max_per_host = Some(v)),
            ("lock_timeout_ms", 3_600_000, |r, v| {
                r.lock_timeout_ms = Some(v)
            }),
            ("statement_timeout_ms", 86_400_000, |r, v| {
                r.statement_timeout_ms = Some(v)
            }),
            ("max_attempts", 100, |r, v| r.max_attempts = Some(v)),
        ];
        for (field, max, set) in fields {
            let with = |v: i32| {
                let mut r = WaveRequest::default();
                set(&mut r, v);
                r
            };
            assert_eq!(refused(with(1)), None, "{field} = 1");
            assert_eq!(refused(with(max)), None, "{field} = {max}");
            assert_eq!(refused(with(0)), Some(field), "{field} = 0");
            assert_eq!(refused(with(-1)), Some(field), "{field} = -1");
            assert_eq!(refused(with(max + 1)), Some(field), "{field} = {max} + 1");
        }
        let s = WaveRequest {
            batch_size: Some(7),
            max_concurrency: Some(3),
            lock_timeout_ms: Some(1),
            statement_timeout_ms: Some(2),
            max_attempts: Some(9),
            ..Default::default()
        }
        .settings()
        .unwrap();
        assert_eq!(
            (
                s.batch_size,
                s.max_concurrency,
                s.max_per_host,
                s.run.lock_timeout_ms,
                s.run.statement_timeout_ms,
                s.run.max_attempts
            ),
            (7, 3, 3, 1, 2, 9),
            "max_per_host defaults to max_concurrency"
        );
    }

    #[test]
    fn a_failure_budget_is_a_count_of_zero_or_more_or_a_percentage_up_to_100() {
        let count = |n| WaveRequest {
            max_failures: Some(n),
            ..Default::default()
        };
        let percent = |p| WaveRequest {
            max_failure_percent: Some(p),
            ..Default::default()
        };

        assert_eq!(refused(count(0)), None);
        assert_eq!(refused(count(3)), None);
        assert_eq!(refused(count(-1)), Some("max_failures"));
        for ok in [0.0, 12.5, 100.0] {
            assert_eq!(refused(percent(ok)), None, "{ok}");
        }
        for bad in [-0.5, 100.5, f64::NAN] {
            assert_eq!(refused(percent(bad)), Some("max_failure_percent"), "{bad}");
        }
    }

    #[test]
    fn the_soak_lasts_from_0_seconds_to_a_week() {
        let soak = |v| WaveRequest {
            soak_seconds: Some(v),
            ..Default::default()
        };

        assert_eq!(WaveRequest::default().settings().unwrap().soak_seconds, 30);
        assert_eq!(soak(0).settings().unwrap().soak_seconds, 0);
        assert_eq!(soak(604_800).settings().unwrap().soak_seconds, 604_800);
        assert_eq!(refused(soak(604_801)), Some("soak_seconds"));
        assert_eq!(refused(soak(-1)), Some("soak_seconds"));
    }

    #[test]
    fn a_dry_run_without_analysis_is_accepted_and_runs_as_a_dry_run() {
        let s = WaveRequest {
            dry_run: Some(true),
            ..Default::default()
        }
        .settings()
        .unwrap();

        assert!(s.run.dry_run);
        assert!(!WaveRequest::default().settings().unwrap().run.dry_run);
    }

    #[test]
    fn the_canary_order_is_the_fnv_1a_hash_of_the_slug() {
        // Published FNV-1a 64-bit test vectors.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn counted_canaries_are_not_simply_the_first_slugs() {
        let spec = CanarySpec {
            count: Some(3),
            ..Default::default()
        };

        let (plan, batches) = assign_phases(cands(20, &[]), &spec, 5).unwrap();

        let canaries: Vec<&str> = plan
            .iter()
            .filter(|t| t.phase == 0)
            .map(|t| t.slug.as_str())
            .collect();
        assert_eq!(canaries, CHOSEN_3_OF_20);
        assert_eq!(batches, 4, "17 others in batches of 5");
    }

    /// The three slugs of `t00`..`t19` with the smallest FNV-1a hashes, in slug order.
    const CHOSEN_3_OF_20: [&str; 3] = ["t14", "t16", "t17"];

    #[test]
    fn explicit_canaries_are_matched_case_insensitively_and_go_first() {
        let spec = CanarySpec {
            slugs: Some(vec!["T04".into(), "t01".into()]),
            ..Default::default()
        };

        let (plan, batches) = assign_phases(cands(5, &[2]), &spec, 2).unwrap();

        let phases: Vec<(&str, i32)> = plan.iter().map(|p| (p.slug.as_str(), p.phase)).collect();
        assert_eq!(
            phases,
            [("t00", 1), ("t01", 0), ("t02", 1), ("t03", 2), ("t04", 0)],
            "the flag on t02 does not count when slugs are named"
        );
        assert_eq!(batches, 2);
    }

    #[test]
    fn a_canary_percentage_outside_0_to_100_is_refused() {
        for bad in [-1.0, 100.5] {
            let spec = CanarySpec {
                percent: Some(bad),
                ..Default::default()
            };
            let err = assign_phases(cands(4, &[]), &spec, 2).unwrap_err();
            assert!(
                matches!(
                    err,
                    WaveError::Invalid {
                        field: "canary.percent",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
        let all = CanarySpec {
            percent: Some(100.0),
            ..Default::default()
        };
        let (plan, batches) = assign_phases(cands(4, &[]), &all, 2).unwrap();
        assert!(plan.iter().all(|p| p.phase == 0));
        assert_eq!(batches, 0);
    }
}
