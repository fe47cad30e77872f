//! Running one tenant's migrations: the files of a migration set ([`set`]: loaded from a
//! directory or handed over by `crate::sets`, which owns the published sets and the
//! catalog), the one-tenant runner ([`tenant`]) with its lock-timeout retries and
//! forensics ([`lock_retry`]), its rolled-back twin for dry runs ([`dry_run`]), statement
//! splitting for no-transaction files ([`split`]) and their errors ([`error`]).
//!
//! Waves (`crate::waves`) decide which tenants run when, and with which set; this module
//! makes running one tenant safe. Connections come from `crate::resolve::connector`. It
//! reads no control-DB table.

mod connect;
pub mod dry_run;
pub mod error;
mod history;
pub mod lock_retry;
pub mod set;
pub mod split;
pub mod sqlstate;
pub mod tenant;

pub use dry_run::{DryRunOutcome, TableSize};
pub use error::{FailureKind, MigrateError};
pub use lock_retry::{Blocker, LockRetries};
pub use set::{MigrationFile, MigrationSet, SetError, SetSource};
pub use tenant::{RunLimits, RunOutcome, TenantConnection};
