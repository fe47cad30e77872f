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

mod backend;
mod reference;
mod scope;
pub mod vault;

pub use backend::{BoxFuture, EnvBackend, FileBackend, SecretBackend, SecretStore};
pub use reference::{
    schema as secret_ref_schema, Scheme, SecretRef, SecretRefError, PATTERN as SECRET_REF_PATTERN,
};
pub use scope::{
    check_env_prefix, parse_vault_prefixes, RefScope, ScopeError, VaultScope, DEFAULT_ENV_PREFIX,
    DEFAULT_VAULT_PREFIXES,
};
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
    /// The backend can be read but not written (`env:`), so drover cannot store a
    /// password there.
    #[error("secret {reference} cannot be written by drover: provisioning needs a file: or vault: reference")]
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

fn io_error(reference: &SecretRef) -> impl Fn(std::io::Error) -> SecretError + '_ {
    move |e: std::io::Error| {
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
    }
}

fn read_file_under(reference: &SecretRef, dir: &Path) -> Result<SecretString, SecretError> {
    let io_err = io_error(reference);
    // Canonicalize both sides so a symlink inside the directory that points elsewhere is
    // caught: the reference's syntax alone cannot rule that out.
    let root = dir.canonicalize().map_err(&io_err)?;
    let path: PathBuf = root.join(reference.locator());
    let real = path.canonicalize().map_err(&io_err)?;
    if !real.starts_with(&root) {
        return Err(SecretError::Escapes {
            reference: reference.to_string(),
        });
    }
    let mut text = std::fs::read_to_string(&real).map_err(&io_err)?;
    let trimmed = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(trimmed);
    Ok(SecretString::from(text))
}

/// The path of a `file:` reference under `dir`, with every existing ancestor checked to
/// stay inside `dir` (a symlinked directory could otherwise redirect a write).
fn file_path_under(reference: &SecretRef, dir: &Path) -> Result<(PathBuf, PathBuf), SecretError> {
    let io_err = io_error(reference);
    let root = dir.canonicalize().map_err(&io_err)?;
    let path = root.join(reference.locator());
    let mut ancestor = path.parent();
    while let Some(a) = ancestor {
        if a.exists() {
            if !a.canonicalize().map_err(&io_err)?.starts_with(&root) {
                return Err(SecretError::Escapes {
                    reference: reference.to_string(),
                });
            }
            break;
        }
        ancestor = a.parent();
    }
    if path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(SecretError::Escapes {
            reference: reference.to_string(),
        });
    }
    Ok((root, path))
}

/// Stores `value` in the file behind a `file:` reference: directories are created `0700`,
/// the file `0600`, written to a temporary name and renamed, so a reader never sees half a
/// password and a crash leaves either the old value or the new one.
pub fn write_file_under(
    reference: &SecretRef,
    dir: &Path,
    value: &SecretString,
) -> Result<(), SecretError> {
    use secrecy::ExposeSecret;
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io_err = io_error(reference);
    let (_, path) = file_path_under(reference, dir)?;
    let parent = path.parent().ok_or_else(|| SecretError::Escapes {
        reference: reference.to_string(),
    })?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(&io_err)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("secret");
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(&io_err)?;
    let written = f
        .write_all(value.expose_secret().as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    Ok(())
}

/// Removes the file behind a `file:` reference; a missing file is not an error.
pub fn remove_file_under(reference: &SecretRef, dir: &Path) -> Result<(), SecretError> {
    let (_, path) = file_path_under(reference, dir)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(reference)(e)),
    }
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
    fn written_file_secret_is_private_and_reads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("drover-secrets-w-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r: SecretRef = "file:tenants/new/acme".parse().unwrap();

        write_file_under(&r, &dir, &SecretString::from("first")).unwrap();
        write_file_under(&r, &dir, &SecretString::from("second")).unwrap();

        let mode = std::fs::metadata(dir.join("tenants/new/acme"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.join("tenants/new"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(
            read_local(&r, Some(&dir)).unwrap().expose_secret(),
            "second"
        );
        remove_file_under(&r, &dir).unwrap();
        remove_file_under(&r, &dir).unwrap();
        assert!(!dir.join("tenants/new/acme").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_through_a_symlinked_directory_is_refused() {
        let dir = std::env::temp_dir().join(format!("drover-secrets-wl-{}", std::process::id()));
        let outside = std::env::temp_dir().join(format!("drover-outside-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let _ = std::fs::remove_file(dir.join("tenants"));
        std::os::unix::fs::symlink(&outside, dir.join("tenants")).unwrap();
        let r: SecretRef = "file:tenants/acme".parse().unwrap();

        let err = write_file_under(&r, &dir, &SecretString::from("pw")).unwrap_err();

        assert!(matches!(err, SecretError::Escapes { .. }), "{err}");
        assert!(!outside.join("acme").exists());
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn missing_env_var_error_names_the_reference() {
        let r: SecretRef = "env:DROVER_TEST_SURELY_UNSET_VAR".parse().unwrap();

        let err = read_local(&r, None).unwrap_err();

        assert!(err.to_string().contains("env:DROVER_TEST_SURELY_UNSET_VAR"));
        assert!(!err.is_retryable());
    }
}
