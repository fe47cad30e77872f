//! What the claim hands a runner ([`Claimed`]) and what the runner hands back to be
//! recorded ([`Finished`]).

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::migrate::{MigrateError, RunOutcome};
use crate::registry::TenantDb;
use crate::sets::PlanSource;
use crate::waves::run_settings::RunSettings;

/// A target this replica now holds.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub wave_id: Uuid,
    pub tenant_id: Uuid,
    pub slug: String,
    /// The database host the plan put it on (the key of the per-host limits).
    pub host: String,
    /// Attempts so far, including this one.
    pub attempt: i32,
    pub target_version: i32,
    /// How the runner migrates it, as the wave's plan stored it.
    pub run: RunSettings,
    /// Where the wave's files come from, as its plan recorded them (shared by every
    /// target of one claim): the runner asks for these files, not for the wave's.
    pub source: Arc<PlanSource>,
    /// The tenant as it is now (read in the claim, so the worker needs no extra query).
    pub tenant: TenantNow,
    /// Claimed for a slot free now, never to wait in the replica's buffer: its wave is in
    /// its canary phase or has little failure budget to spare.
    pub start_now: bool,
}

/// A claimed tenant's current status and connection parameters.
#[derive(Debug, Clone)]
pub struct TenantNow {
    /// `None` when the tenant was deleted since the plan was made.
    pub status: Option<String>,
    /// Where its database is.
    pub db: TenantDb,
    /// What the registry records as the tenant's version, and whether it has an open issue.
    pub schema_version: Option<i32>,
    pub has_issue: bool,
}

impl TenantNow {
    /// Reads `status` (NULL once deleted), `schema_version`, `has_issue` and the
    /// [`TenantDb`] columns of `row`, by name.
    pub fn from_row(row: &tokio_postgres::Row) -> Result<TenantNow, tokio_postgres::Error> {
        Ok(TenantNow {
            status: row.try_get("status")?,
            db: TenantDb::from_row(row)?,
            schema_version: row.try_get("schema_version")?,
            has_issue: row.try_get("has_issue")?,
        })
    }
}

/// What became of a claimed target, waiting to be recorded by [`super::record`].
pub enum Finished {
    Succeeded {
        claim: Claimed,
        out: RunOutcome,
        duration_ms: i64,
        /// The schema fingerprint taken after the run, when it applied something.
        schema: Option<crate::drift::Fingerprint>,
    },
    Failed {
        claim: Claimed,
        error: MigrateError,
        backoff: Duration,
    },
    Skipped {
        claim: Claimed,
        reason: String,
    },
}

impl Finished {
    /// The target it is about.
    pub fn claim(&self) -> &Claimed {
        match self {
            Finished::Succeeded { claim, .. }
            | Finished::Failed { claim, .. }
            | Finished::Skipped { claim, .. } => claim,
        }
    }

    /// Up to date and the registry already agrees: only the target row changes.
    pub(super) fn only_target(&self) -> bool {
        matches!(self, Finished::Succeeded { claim, out, .. }
            if out.applied.is_empty() && claim.tenant.schema_version == out.to && !claim.tenant.has_issue)
    }
}
