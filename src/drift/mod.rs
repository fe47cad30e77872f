//! Schema drift: what each tenant's schema really is, compared across the fleet.
//!
//! A tenant's history table says which migrations ran (a history that disagrees with the
//! files is *history drift*, `migrate`); this module reads the schema itself and calls a
//! tenant whose schema differs from what its version should look like *schema drift*.
//!
//! ```text
//!  fingerprint  one catalog statement per tenant ─► objects (key → hash, detail) + root hash
//!  store        control_plane.drift_schemas (one row per distinct schema, shared) and
//!               control_plane.tenant_drift (per tenant: root, version, scanned_at, drifted)
//!  scan         leader task: every drift_scan_interval (off by default) and on request
//!               (POST /v1/drift/scans), bounded concurrency, the host caps
//!  replay       the migration set replayed on a scratch database (drift_scratch_url),
//!               fingerprinted after each version, cached by set id: the expected schema
//!  cohorts      tenants grouped by (version, root); each group's differences against the
//!               expected schema of its version (the replay, else the largest group)
//! ```
//!
//! A fingerprint is also taken after every tenant migration that applied something, on
//! the migration's own connection (the wave executor hands a hook to `migrate`), so a wave
//! leaves every tenant it changed fingerprinted.

pub mod cohorts;
pub mod fingerprint;
pub mod replay;
pub mod scan;
pub mod store;

pub use fingerprint::{Fingerprint, SchemaObject};
pub use scan::{DriftSettings, Scanner};

/// Why a fingerprint, scan or drift answer did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// Reading the tenant's catalog failed (the server's words, never a DSN).
    #[error("reading the tenant's schema: {0}")]
    Tenant(String),
    /// Connecting to the tenant failed.
    #[error(transparent)]
    Connect(#[from] crate::migrate::MigrateError),
    /// The control database failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The replay on the scratch database failed (a file that fails there fails on every
    /// tenant too; the server's words, never the URL).
    #[error("schema drift replay: {0}")]
    Scratch(String),
    /// Recording a tenant event failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}

impl DriftError {
    /// Whether trying again later may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A catalog read fails for a dropped connection or a busy server, not for
            // anything a retry cannot change.
            DriftError::Tenant(_) => true,
            DriftError::Connect(e) => e.is_retryable(),
            DriftError::Db(e) => e.is_retryable(),
            DriftError::Registry(e) => e.is_retryable(),
            // A broken file or a refused CREATE DATABASE needs a person.
            DriftError::Scratch(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_catalog_read_is_retryable_and_a_corrupt_control_row_is_not() {
        assert!(DriftError::Tenant("connection closed".into()).is_retryable());
        let corrupt = DriftError::Db(crate::db::DbError::Internal("x".into()));
        assert!(!corrupt.is_retryable());
    }
}
