//! Secret references: what the control DB stores instead of a password.
//!
//! A reference is `SCHEME:LOCATOR` (`env:VAR`, `file:relative/name`, `vault:mount/path#field`).
//! This module owns parsing and validating references (the registry refuses to write a bad
//! one) and reading the value behind `env:` and `file:` references. Values only ever exist
//! as [`SecretString`]: they never reach logs, events, error messages or `Debug` output;
//! errors name the reference, never what it points to.

mod backend;
mod reference;
pub mod vault;

pub use backend::{BoxFuture, EnvBackend, FileBackend, SecretBackend, SecretStore};
pub use reference::{Scheme, SecretRef, SecretRefError};
pub use vault::{VaultBackend, VaultConfig};

use std::path::{Path, PathBuf};

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
}

impl SecretError {
    /// Whether trying again later may succeed (a transient backend failure) as opposed to a
    /// configuration mistake that needs a person.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SecretError::Unreadable { .. })
    }
}

/// Reads the value behind an `env:` or `file:` reference.
pub fn read_local(
    reference: &SecretRef,
    secrets_dir: Option<&Path>,
) -> Result<SecretString, SecretError> {
    match reference.scheme() {
        Scheme::Env => std::env::var(reference.locator())
            .map(SecretString::from)
            .map_err(|_| SecretError::NotFound {
                reference: reference.to_string(),
                why: "environment variable is not set or not UTF-8".into(),
            }),
        Scheme::File => {
            let dir = secrets_dir.ok_or_else(|| SecretError::NoSecretsDir {
                reference: reference.to_string(),
            })?;
            read_file_under(reference, dir)
        }
        Scheme::Vault => Err(SecretError::Unsupported {
            reference: reference.to_string(),
            scheme: "vault",
        }),
    }
}

fn read_file_under(reference: &SecretRef, dir: &Path) -> Result<SecretString, SecretError> {
    let io_err = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            SecretError::NotFound {
                reference: reference.to_string(),
                why: "no such file under the secrets directory".into(),
            }
        } else {
            SecretError::Unreadable {
                reference: reference.to_string(),
                why: e.kind().to_string(),
            }
        }
    };
    // Canonicalize both sides so a symlink inside the directory that points elsewhere is
    // caught: the reference's syntax alone cannot rule that out.
    let root = dir.canonicalize().map_err(io_err)?;
    let path: PathBuf = root.join(reference.locator());
    let real = path.canonicalize().map_err(io_err)?;
    if !real.starts_with(&root) {
        return Err(SecretError::Escapes {
            reference: reference.to_string(),
        });
    }
    let mut text = std::fs::read_to_string(&real).map_err(io_err)?;
    let trimmed = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(trimmed);
    Ok(SecretString::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn file_reference_reads_value_without_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("drover-secrets-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tenants")).unwrap();
        std::fs::write(dir.join("tenants/acme"), "s3cret\n").unwrap();
        let r: SecretRef = "file:tenants/acme".parse().unwrap();

        let value = read_local(&r, Some(&dir)).unwrap();

        assert_eq!(value.expose_secret(), "s3cret");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn symlink_pointing_outside_the_secrets_dir_is_refused() {
        let dir = std::env::temp_dir().join(format!("drover-secrets-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("passwd"));
        std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).unwrap();
        let r: SecretRef = "file:passwd".parse().unwrap();

        let err = read_local(&r, Some(&dir)).unwrap_err();

        assert!(matches!(err, SecretError::Escapes { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_env_var_error_names_the_reference() {
        let r: SecretRef = "env:DROVER_TEST_SURELY_UNSET_VAR".parse().unwrap();

        let err = read_local(&r, None).unwrap_err();

        assert!(err.to_string().contains("env:DROVER_TEST_SURELY_UNSET_VAR"));
        assert!(!err.is_retryable());
    }
}
