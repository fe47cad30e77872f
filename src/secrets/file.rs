//! `file:relative/name`: a file under the secrets directory (`DROVER_SECRETS_DIR`, e.g. a
//! mounted Kubernetes secret). Reads never leave the directory (no `..`, symlinks checked);
//! provisioning writes `0600` files atomically. A tenant's reference must be under
//! `file_secret_prefix`, a webhook key's under `webhook_secret_prefix`, and neither may name
//! drover's own token files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::SecretString;

use super::reference::valid_path;
use super::scheme::Scheme;
use super::{
    BoxFuture, Purpose, RefScope, ScopeError, SecretBackend, SecretError, SecretRef, SecretSettings,
};

/// The `file:` scheme.
pub const SCHEME: Scheme = Scheme {
    name: "file",
    locator_pattern: "[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*",
    valid_locator: valid_path,
    expected: "file: reference must be a relative path of letters, digits, '.', '_', '-' and '/' (e.g. file:tenants/acme)",
    in_scope,
    writable: true,
    cacheable: true,
    backend,
    unconfigured: "file (set DROVER_SECRETS_DIR)",
};

/// Relative, no `..` (parsing) and no symlink escape (reading) keep a reference in the
/// secrets directory; drover's own files live there too, so a reference must also be under
/// its purpose's directory (`file_secret_prefix`, `webhook_secret_prefix`) and never name
/// a token file.
fn in_scope(scope: &RefScope, purpose: Purpose, r: &SecretRef) -> Result<(), ScopeError> {
    if scope.own_files().iter().any(|f| f == r.locator()) {
        return Err(ScopeError::OwnFile);
    }
    scope.check_file(purpose, r.locator())
}

fn backend(settings: &SecretSettings) -> Result<Option<Arc<dyn SecretBackend>>, SecretError> {
    Ok(settings
        .dir
        .clone()
        .map(|d| Arc::new(FileBackend::new(d)) as Arc<dyn SecretBackend>))
}

/// `file:relative/name`: a file under the secrets directory.
pub struct FileBackend {
    dir: PathBuf,
}

impl FileBackend {
    /// Reads under `dir`.
    pub fn new(dir: PathBuf) -> Self {
        FileBackend { dir }
    }
}

impl SecretBackend for FileBackend {
    fn scheme(&self) -> &'static Scheme {
        &SCHEME
    }

    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>> {
        Box::pin(async move {
            let (r, dir) = (reference.clone(), self.dir.clone());
            // File reads can block on a slow mount; keep them off the async workers.
            tokio::task::spawn_blocking(move || read_under(&r, &dir))
                .await
                .unwrap_or_else(|_| {
                    Err(SecretError::Unreadable {
                        reference: reference.to_string(),
                        why: "reader task failed".into(),
                    })
                })
        })
    }

    fn write<'a>(
        &'a self,
        reference: &'a SecretRef,
        value: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(async move {
            let (r, dir, v) = (reference.clone(), self.dir.clone(), value.clone());
            tokio::task::spawn_blocking(move || write_file_under(&r, &dir, &v))
                .await
                .unwrap_or_else(|_| {
                    Err(SecretError::Unreadable {
                        reference: reference.to_string(),
                        why: "writer task failed".into(),
                    })
                })
        })
    }

    fn remove<'a>(&'a self, reference: &'a SecretRef) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(async move {
            let (r, dir) = (reference.clone(), self.dir.clone());
            tokio::task::spawn_blocking(move || remove_file_under(&r, &dir))
                .await
                .unwrap_or_else(|_| {
                    Err(SecretError::Unreadable {
                        reference: reference.to_string(),
                        why: "remover task failed".into(),
                    })
                })
        })
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

pub(super) fn read_under(reference: &SecretRef, dir: &Path) -> Result<SecretString, SecretError> {
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
pub(super) fn write_file_under(
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
pub(super) fn remove_file_under(reference: &SecretRef, dir: &Path) -> Result<(), SecretError> {
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

        let value = read_under(&r, &dir).unwrap();

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

        let err = read_under(&r, &dir).unwrap_err();

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
        assert_eq!(read_under(&r, &dir).unwrap().expose_secret(), "second");
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
}
