//! What a tenant's runner reads of its wave: [`RunSettings`], stored whole in the frozen
//! plan (`plan->'settings'`, flattened beside the wave's other settings) and read whole
//! by the claim, so a new option a runner obeys is one field here, its validation in
//! [`super::plan`] and its use in the runner — no column-by-column copy in between.
//!
//! Plans stored before a field existed still read: a missing `lock_retries` is the
//! default schedule, and a plan without the settings at all (or one that does not parse)
//! takes them from the wave row's columns, which every wave has always had.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::row::Wave;
use crate::migrate::LockRetries;

/// How a runner migrates one tenant of the wave.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Per-tenant `lock_timeout` (the last lock attempt's).
    pub lock_timeout_ms: i32,
    /// Per-tenant `statement_timeout`.
    pub statement_timeout_ms: i32,
    /// Attempts per tenant for retryable errors.
    pub max_attempts: i32,
    /// Run and roll back; record nothing on the tenant.
    pub dry_run: bool,
    /// How lock timeouts are retried within one attempt (default before it existed).
    #[serde(default)]
    pub lock_retries: LockRetries,
}

impl RunSettings {
    /// The settings of `plan_settings` (`plan->'settings'`), or, for a plan that lacks
    /// them, derived from the wave's columns and whatever lock retry schedule it names.
    pub fn from_plan(plan_settings: Option<&Value>, wave: &Wave) -> RunSettings {
        if let Some(run) = plan_settings.and_then(|v| RunSettings::deserialize(v).ok()) {
            return run;
        }
        let lock_retries = plan_settings
            .and_then(|v| v.get("lock_retries"))
            .and_then(|v| LockRetries::deserialize(v).ok())
            .unwrap_or_default();
        RunSettings {
            lock_timeout_ms: wave.lock_timeout_ms,
            statement_timeout_ms: wave.statement_timeout_ms,
            max_attempts: wave.max_attempts,
            dry_run: wave.dry_run,
            lock_retries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wave() -> Wave {
        let now = chrono::Utc::now();
        Wave {
            id: uuid::Uuid::nil(),
            state: super::super::WaveState::Rolling,
            paused_from: None,
            target_version: 3,
            current_phase: 1,
            phase_count: 1,
            batch_size: 50,
            max_concurrency: 8,
            max_per_host: 8,
            max_failures: None,
            max_failure_percent: None,
            soak_seconds: 0,
            lock_timeout_ms: 1234,
            statement_timeout_ms: 5678,
            max_attempts: 7,
            dry_run: true,
            exclude_failed_of: None,
            soak_until: None,
            halt_reason: None,
            promoted_by: None,
            promoted_at: None,
            created_by: "t".into(),
            created_at: now,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn settings_stored_in_the_plan_are_read_whole() {
        let stored = RunSettings {
            lock_timeout_ms: 10,
            statement_timeout_ms: 20,
            max_attempts: 2,
            dry_run: false,
            lock_retries: LockRetries::default(),
        };
        let plan = json!({ "batch_size": 50, "soak_seconds": 0, "lock_timeout_ms": 10,
            "statement_timeout_ms": 20, "max_attempts": 2, "dry_run": false,
            "lock_retries": serde_json::to_value(stored.lock_retries).unwrap() });

        assert_eq!(RunSettings::from_plan(Some(&plan), &wave()), stored);
    }

    #[test]
    fn a_plan_from_before_lock_retries_gets_the_default_schedule() {
        let plan = json!({ "lock_timeout_ms": 10, "statement_timeout_ms": 20, "max_attempts": 2, "dry_run": false });

        let run = RunSettings::from_plan(Some(&plan), &wave());

        assert_eq!((run.lock_timeout_ms, run.max_attempts), (10, 2));
        assert_eq!(run.lock_retries, LockRetries::default());
    }

    #[test]
    fn a_plan_without_settings_takes_them_from_the_wave_columns() {
        let w = wave();

        let run = RunSettings::from_plan(None, &w);
        let partial = RunSettings::from_plan(Some(&json!({ "batch_size": 5 })), &w);

        let expected = (1234, 5678, 7, true);
        let got = |r: RunSettings| {
            (
                r.lock_timeout_ms,
                r.statement_timeout_ms,
                r.max_attempts,
                r.dry_run,
            )
        };
        assert_eq!(got(run), expected);
        assert_eq!(got(partial), expected);
    }
}
