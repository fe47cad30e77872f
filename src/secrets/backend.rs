//! One backend per scheme behind [`SecretBackend`]; [`SecretStore`] routes a reference to
//! the backend for its scheme. Reading is every backend's job; writing and removing (for
//! provisioning) only `file:` and `vault:` can do.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use secrecy::SecretString;

use super::{read_local, remove_file_under, write_file_under, Scheme, SecretError, SecretRef};

/// A boxed future, so backends can sit behind `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Reads the current value behind a reference of one scheme.
pub trait SecretBackend: Send + Sync {
    /// Reads the value. Errors name the reference, never the value.
    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>>;

    /// Stores `value` behind the reference, replacing what was there.
    fn write<'a>(
        &'a self,
        reference: &'a SecretRef,
        _value: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(async move {
            Err(SecretError::ReadOnly {
                reference: reference.to_string(),
            })
        })
    }

    /// Removes the value behind the reference; one that is already gone is not an error.
    fn remove<'a>(&'a self, reference: &'a SecretRef) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(async move {
            Err(SecretError::ReadOnly {
                reference: reference.to_string(),
            })
        })
    }
}

/// `env:NAME`: a variable of the daemon's environment.
pub struct EnvBackend;

impl SecretBackend for EnvBackend {
    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>> {
        Box::pin(async move { read_local(reference, None) })
    }
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
    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>> {
        Box::pin(async move {
            let (r, dir) = (reference.clone(), self.dir.clone());
            // File reads can block on a slow mount; keep them off the async workers.
            tokio::task::spawn_blocking(move || read_local(&r, Some(&dir)))
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

/// Routes each reference to the backend of its scheme.
#[derive(Clone)]
pub struct SecretStore {
    env: Arc<dyn SecretBackend>,
    file: Option<Arc<dyn SecretBackend>>,
    vault: Option<Arc<dyn SecretBackend>>,
}

impl SecretStore {
    /// A store with the given optional backends (`env:` is always available).
    pub fn new(
        file: Option<Arc<dyn SecretBackend>>,
        vault: Option<Arc<dyn SecretBackend>>,
    ) -> Self {
        SecretStore {
            env: Arc::new(EnvBackend),
            file,
            vault,
        }
    }

    /// Reads through the backend for the reference's scheme.
    pub async fn read(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        self.backend(reference)?.read(reference).await
    }

    /// Writes through the backend for the reference's scheme (`env:` refuses).
    pub async fn write(
        &self,
        reference: &SecretRef,
        value: &SecretString,
    ) -> Result<(), SecretError> {
        self.backend(reference)?.write(reference, value).await
    }

    /// Removes through the backend for the reference's scheme (`env:` refuses).
    pub async fn remove(&self, reference: &SecretRef) -> Result<(), SecretError> {
        self.backend(reference)?.remove(reference).await
    }

    /// Whether drover could store a value behind this reference here (its backend is
    /// configured and writable), without touching the backend.
    pub fn check_writable(&self, reference: &SecretRef) -> Result<(), SecretError> {
        if reference.scheme() == Scheme::Env {
            return Err(SecretError::ReadOnly {
                reference: reference.to_string(),
            });
        }
        self.backend(reference).map(|_| ())
    }

    fn backend(&self, reference: &SecretRef) -> Result<&Arc<dyn SecretBackend>, SecretError> {
        let backend = match reference.scheme() {
            Scheme::Env => Some(&self.env),
            Scheme::File => self.file.as_ref(),
            Scheme::Vault => self.vault.as_ref(),
        };
        match backend {
            Some(b) => Ok(b),
            None => Err(SecretError::Unsupported {
                reference: reference.to_string(),
                scheme: match reference.scheme() {
                    Scheme::File => "file (set DROVER_SECRETS_DIR)",
                    Scheme::Vault => "vault (set DROVER_VAULT_ADDR and DROVER_VAULT_TOKEN)",
                    Scheme::Env => "env",
                },
            }),
        }
    }
}
