//! Secret references: what the control DB stores instead of a password.
//!
//! A reference is `SCHEME:LOCATOR` (`env:VAR`, `file:relative/name`, `vault:mount/path#field`).
//! This module owns parsing and validating references (the registry refuses to write a bad
//! one), reading the value behind `env:` and `file:` references, and writing or removing
//! `file:` and `vault:` values when drover provisions a tenant (an `env:` value belongs to
//! the daemon's environment and cannot be written). Values only ever exist
//! as [`SecretString`]: they never reach logs, events, error messages or `Debug` output;
//! errors name the reference, never what it points to. Which references a tenant may use at
//! all is [`RefScope`]'s business.
//!
//! Layout: [`SCHEMES`] below is the one list to extend; `scheme.rs` says what a scheme
//! declares; `reference.rs` parses references against that list; `backend.rs` is the
//! [`SecretBackend`] trait and the [`SecretStore`] that routes by scheme; `env.rs`,
//! `file.rs`, `vault/`, `gcp/` (`gcp-sm:`) and `azure/` (`azure-kv:`) are one scheme each
//! (descriptor, scope rule, backend; the cloud backends behind the `gcp` and `azure` cargo
//! features), `cloud.rs` what the cloud schemes share;
//! `scope.rs` holds the scope settings. The resolver's cache sits above all of this.
//!
//! Settings this module owns: [`SecretSettings`] (what the backends are built from: the
//! secrets directory and Vault's address, token, namespace and timeout) and [`RefScope`]
//! (`env_secret_prefix`, `vault_allowed_prefixes` and drover's own token files). The
//! configuration fills both from its keys; nothing here reads the configuration.

mod backend;
pub mod cloud;
mod reference;
pub mod scheme;
mod scope;

// The schemes: one file each, registered here and in `SCHEMES` (see `scheme.rs` for what a
// scheme declares and why it is a descriptor rather than an enum variant).
pub mod aws;
pub mod azure;
mod env;
mod file;
pub mod gcp;
pub mod vault;

/// Every registered scheme, in the order messages list them.
pub const SCHEMES: &[&Scheme] = &[
    &env::SCHEME,
    &file::SCHEME,
    &vault::SCHEME,
    &aws::SCHEME,
    &gcp::SCHEME,
    &azure::SCHEME,
];

pub use aws::{
    parse_aws_sm_prefixes, parse_recovery_window, AwsSmScope, AwsSmSettings,
    DEFAULT_AWS_SM_PREFIXES, DEFAULT_RECOVERY_WINDOW_DAYS, SCHEME as AWS_SM,
};
pub use azure::AzureKvConfig;
pub use backend::{
    BoxFuture, Fetched, SecretBackend, SecretSettings, SecretStore, FETCH_MANY_IN_FLIGHT,
};
pub use cloud::{CloudScope, DEFAULT_CLOUD_PREFIXES};
pub use env::{EnvBackend, SCHEME as ENV};
pub use file::{FileBackend, SCHEME as FILE};
pub use gcp::GcpSmConfig;
pub use reference::{
    schema as secret_ref_schema, SecretRef, SecretRefError, PATTERN as SECRET_REF_PATTERN,
};
pub use scheme::Scheme;
pub use scope::{
    check_env_prefix, own_files_inside, parse_file_prefix, parse_vault_prefixes, OwnPath, Purpose,
    RefScope, ScopeError, VaultScope, DEFAULT_ENV_PREFIX, DEFAULT_FILE_PREFIX,
    DEFAULT_VAULT_PREFIXES, DEFAULT_WEBHOOK_PREFIX, ENV_FAMILIES,
};
pub use vault::{VaultBackend, VaultConfig, SCHEME as VAULT};

use std::path::Path;

use secrecy::SecretString;

/// Reading the value behind a reference failed. Messages name the reference, not the value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretError {
    /// The variable or file does not exist.
    #[error("secret {reference} not found: {why}")]
    NotFound { reference: String, why: String },
    /// A `file:` reference resolved outside the secrets directory (e.g. through a symlink).
    #[error("secret {reference} resolves outside the secrets directory; refusing to read it")]
    Escapes { reference: String },
    /// `file:` needs `DROVER_SECRETS_DIR`.
    #[error("secret {reference} is a file: reference but no secrets directory is configured (set DROVER_SECRETS_DIR)")]
    NoSecretsDir { reference: String },
    /// The backend could not be read right now (I/O error, backend down, sealed, timeout).
    #[error("secret {reference} could not be read: {why}")]
    Unreadable { reference: String, why: String },
    /// The backend refused us (bad or expired token, policy): a person must fix it.
    #[error("secret {reference}: access denied by the backend: {why}")]
    Denied { reference: String, why: String },
    /// The scheme has no backend in this configuration.
    #[error("secret {reference}: the {scheme} backend is not configured")]
    Unsupported {
        reference: String,
        scheme: &'static str,
    },
    /// The backend can be read but not written (`env:`), so drover cannot store a
    /// password there.
    #[error("secret {reference} cannot be written by drover: provisioning needs a {} reference", scheme::listed(|s| s.writable, ":"))]
    ReadOnly { reference: String },
    /// A tenant's reference outside the allowed scope (e.g. planted directly in the control
    /// DB): refused, never read.
    #[error("secret {reference} refused: {rule}")]
    OutOfScope { reference: String, rule: ScopeError },
}

impl SecretError {
    /// Whether trying again later may succeed (a transient backend failure) as opposed to a
    /// configuration mistake that needs a person.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SecretError::Unreadable { .. })
    }
}

/// Reads the value behind an `env:` or `file:` reference synchronously, for drover's own
/// configuration (token references read once at start); other schemes need a backend.
pub fn read_local(
    reference: &SecretRef,
    secrets_dir: Option<&Path>,
) -> Result<SecretString, SecretError> {
    let scheme = reference.scheme();
    if scheme == &ENV {
        env::read_var(reference)
    } else if scheme == &FILE {
        let dir = secrets_dir.ok_or_else(|| SecretError::NoSecretsDir {
            reference: reference.to_string(),
        })?;
        file::read_under(reference, dir)
    } else {
        Err(SecretError::Unsupported {
            reference: reference.to_string(),
            scheme: scheme.name,
        })
    }
}
