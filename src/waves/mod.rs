//! Migration waves: move a set of tenants to a target version, canaries first, then
//! batches, halting before a bad migration spreads.
//!
//! ```text
//!  pending ─► canary ─► soaking ─► rolling (batch 1..n) ─► completed
//!     └──────(no canaries)──────────┘
//!
//!  canary   ── a canary failed ──────────► halted   (resume: failed targets run again)
//!  soaking  ── an analysis check failed ─► halted   (resume: the soak starts over)
//!  soaking  ── analysis inconclusive ────► paused   (resume: the soak starts over)
//!  soaking  ── promote (operator) ───────► rolling  (the rest of the soak is skipped)
//!  rolling  ── failure budget spent ─────► halted
//!  pending/canary/soaking/rolling ── pause ──► paused (resume: back to where it was)
//!  any state but completed/aborted ── abort ──► aborted
//!
//!  dry run: pending ─► rolling (one phase) ─► completed
//!           rolling ── a tenant needs attention (its transaction escaped) ──► halted
//! ```
//!
//! The machine is a type ([`state`]: [`WaveState`], a pure `step` for the engine and
//! `operate` for operators, every arrow drawn there and unit-tested). A chosen transition
//! is written by [`timeline::apply`] alone: the wave row and one `wave_events` row in one
//! transaction that holds the wave's row lock, so exactly one replica moves it ([`store`]).
//!
//! Work is rows: `wave_targets`, claimed by any replica with `FOR UPDATE SKIP LOCKED` and a
//! lease renewed while the tenant runs ([`claim`]), each database host capped by its
//! adaptive limit ([`host_limits`]: halved on congestion, raised on clean finishes).
//! [`executor`] is the per-replica loop (the `wave-worker` task): every 250 ms, or at
//! once when a tenant finishes, it advances active waves, claims free work and claims due
//! analysis checks of soaking waves ([`analysis`]).
//!
//! Dry-run waves ([`dry_run`]) run every pending migration in a rolled-back transaction
//! and record who would fail and why; a real wave can quarantine those tenants
//! (`exclude_failed_of`). Creating a wave is [`create`]; its row, read by name everywhere,
//! is [`Wave`] ([`row`]). Reads for others: [`gauges`] (the `/metrics` counts) and
//! [`overview`] (the console's lists, and the questions the scheduler and set deletion ask).
//!
//! Tenants whose status changes mid-wave: suspended ones are still migrated (their
//! schema must be current when they come back); provisioning, deleting and deleted ones
//! are skipped with the reason recorded.
//!
//! The migration files a wave runs come from [`crate::sets::Catalog`]: the worker reads the
//! plan's source ([`row::plan_source`], remembered by the [`WaveStore`]) and asks the
//! catalog for those files, which are matched against the plan's frozen fingerprint before
//! any target is claimed. Connections to its tenants come from [`crate::resolve::Connector`].

// First: its `wave_cols!` is used by the modules below.
pub mod row;

pub mod analysis;
pub mod claim;
pub mod create;
pub mod dry_run;
pub mod executor;
pub mod gauges;
pub mod host_limits;
mod lint_gate;
pub mod overview;
pub mod plan;
pub mod redact;
pub mod run_settings;
pub mod state;
pub mod store;
pub mod timeline;

pub use plan::{CanarySpec, Selector, WaveRequest};
pub use row::Wave;
pub use state::{Action, WaveState};
pub use store::{WaveStore, WaveView};

use crate::db::DbError;

/// Why a wave operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WaveError {
    /// The request is invalid.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// No wave with this id.
    #[error("no wave {0}")]
    NotFound(String),
    /// Some of the tenants are in another wave that has not finished.
    #[error("{0}")]
    Overlap(String),
    /// The operation does not apply in the wave's state.
    #[error("cannot {action} wave {id}: it is {state}")]
    IllegalState {
        id: String,
        action: &'static str,
        state: String,
    },
    /// The files the wave would run have lint errors it did not acknowledge.
    #[error("lint_failed: {}", describe_findings(.0))]
    LintFailed(Vec<crate::lint::Finding>),
    /// The migration files could not be loaded.
    #[error("tenant migrations: {0}")]
    Migrations(#[from] crate::migrate::SetError),
    /// Writing a tenant's event or row through the registry failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The control DB failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<crate::sets::PublishedError> for WaveError {
    fn from(e: crate::sets::PublishedError) -> Self {
        use crate::sets::PublishedError as P;
        match e {
            P::Db(db) => WaveError::Db(db),
            P::Set(set) => WaveError::Migrations(set),
            other => WaveError::Invalid {
                field: "migration_set",
                message: other.to_string(),
            },
        }
    }
}

fn describe_findings(findings: &[crate::lint::Finding]) -> String {
    let listed: Vec<String> = findings
        .iter()
        .map(|f| format!("{} ({}:{})", f.rule, f.file, f.line))
        .collect();
    format!(
        "{} error finding(s) not acknowledged: {}; fix the files or list the rules in \"acknowledge\"",
        findings.len(),
        listed.join(", ")
    )
}

impl WaveError {
    /// Whether retrying may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            WaveError::Db(e) => e.is_retryable(),
            WaveError::Registry(e) => e.is_retryable(),
            _ => false,
        }
    }
}

impl From<tokio_postgres::Error> for WaveError {
    fn from(e: tokio_postgres::Error) -> Self {
        WaveError::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for WaveError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        WaveError::Db(DbError::Pool(e))
    }
}
