//! One backend per scheme behind [`SecretBackend`]; [`SecretStore`] routes a reference to
//! the backend for its scheme.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use secrecy::SecretString;

use super::{read_local, Scheme, SecretError, SecretRef};

/// A boxed future, so backends can sit behind `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Reads the current value behind a reference of one scheme.
pub trait SecretBackend: Send + Sync {
    /// Reads the value. Errors name the reference, never the value.
    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>>;
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
        let backend = match reference.scheme() {
            Scheme::Env => Some(&self.env),
            Scheme::File => self.file.as_ref(),
            Scheme::Vault => self.vault.as_ref(),
        };
        match backend {
            Some(b) => b.read(reference).await,
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
