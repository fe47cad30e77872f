//! Tenant migrations: the migration set on disk ([`set`]), the catalog of sets this
//! replica knows and the fingerprint check of a wave's plan ([`catalog`]), the one-tenant
//! runner ([`tenant`]) with its lock-timeout retries and forensics ([`lock_retry`]), its
//! rolled-back twin for dry runs ([`dry_run`]) and their errors ([`error`]). Waves (`crate::waves`) decide which tenants run when; this module makes
//! running one tenant safe. Connections come from `crate::resolve::connector`.

pub mod catalog;
pub mod dry_run;
pub mod error;
pub mod lock_retry;
pub mod published;
pub mod set;
pub mod split;
pub mod sqlstate;
pub mod tenant;

pub use catalog::Catalog;
pub use dry_run::{DryRunOutcome, TableSize};
pub use error::{FailureKind, MigrateError};
pub use lock_retry::{Blocker, LockRetries};
pub use published::PublishedError;
pub use set::{MigrationFile, MigrationSet, SetError, SetSource};
pub use tenant::{RunLimits, RunOutcome, TenantConnection};
