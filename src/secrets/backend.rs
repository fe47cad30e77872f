//! One backend per scheme behind [`SecretBackend`]; [`SecretStore`] holds the backends the
//! [`SecretSettings`] enable, keyed by scheme, and routes a reference to its backend.
//! Reading is every backend's job; writing and removing (for provisioning) only the
//! writable ones'.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use secrecy::SecretString;

use super::scheme::Scheme;
use super::SCHEMES;
use super::{AzureKvConfig, GcpSmConfig, SecretError, SecretRef, VaultConfig};

/// What the backends are built from: one field per scheme that takes settings (`env:`
/// takes none). The configuration fills it from its keys; a new backend's settings are a
/// new field here.
#[derive(Debug, Clone, Default)]
pub struct SecretSettings {
    /// The directory `file:` references are read and written under (`secrets_dir`);
    /// `None`: the `file:` backend is off.
    pub dir: Option<PathBuf>,
    /// Vault / OpenBao (`vault_addr`, `vault_token`…); `None`: the `vault:` backend is off.
    pub vault: Option<VaultConfig>,
    /// AWS Secrets Manager (`aws_sm_recovery_window_days`, `aws_sm_timeout`); the backend
    /// is on whenever drover is built with the `aws` feature.
    pub aws: super::AwsSmSettings,
    /// Google Secret Manager (`gcp_sm_endpoint`); `None`: `gcp_projects` lists no project
    /// and the `gcp-sm:` backend is off.
    pub gcp: Option<GcpSmConfig>,
    /// Azure Key Vault (`azure_kv_endpoint`, `azure_kv_ca_file`); `None`: `azure_vaults`
    /// lists no vault and the `azure-kv:` backend is off.
    pub azure: Option<AzureKvConfig>,
}

/// A boxed future, so backends can sit behind `dyn` (an `async fn` in a trait cannot).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A value as the backend returned it, with the backend's own name for that version of the
/// secret where it keeps versions (a cloud store's version id). The cache compares versions
/// to notice a rotation; `None` means the backend has no versions (env, file).
pub struct Fetched {
    pub value: SecretString,
    pub version: Option<String>,
}

/// How many reads the default [`SecretBackend::fetch_many`] keeps in flight: enough to hide
/// a remote store's latency, few enough to stay far inside any store's rate limit.
pub const FETCH_MANY_IN_FLIGHT: usize = 8;

/// Reads (and, if its scheme is writable, stores) the value behind references of one
/// scheme. What can be known without a backend — syntax, scope rule, cacheability — is on
/// the scheme's descriptor, which [`SecretBackend::scheme`] returns.
pub trait SecretBackend: Send + Sync {
    /// The scheme this backend serves: its name, scope rule and whether values are cached.
    fn scheme(&self) -> &'static Scheme;

    /// Reads the value. Errors name the reference, never the value.
    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>>;

    /// Reads the value with its version. Backends that version their secrets override
    /// this; the default is [`SecretBackend::read`] without a version.
    fn fetch<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<Fetched, SecretError>> {
        Box::pin(async move {
            let value = self.read(reference).await?;
            Ok(Fetched {
                value,
                version: None,
            })
        })
    }

    /// Fetches many references of this scheme, one answer per reference in the same order.
    /// Backends with a batch call override this; the default keeps
    /// [`FETCH_MANY_IN_FLIGHT`] single fetches in flight.
    fn fetch_many<'a>(
        &'a self,
        references: &'a [SecretRef],
    ) -> BoxFuture<'a, Vec<Result<Fetched, SecretError>>> {
        use futures_util::StreamExt;
        Box::pin(async move {
            let fetches: Vec<_> = references.iter().map(|r| self.fetch(r)).collect();
            futures_util::stream::iter(fetches)
                .buffered(FETCH_MANY_IN_FLIGHT)
                .collect()
                .await
        })
    }

    /// Stores `value` behind the reference, replacing what was there.
    fn write<'a>(
        &'a self,
        reference: &'a SecretRef,
        _value: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(async move { Err(read_only(reference)) })
    }

    /// Removes the value behind the reference; one that is already gone is not an error.
    fn remove<'a>(&'a self, reference: &'a SecretRef) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(async move { Err(read_only(reference)) })
    }
}

fn read_only(reference: &SecretRef) -> SecretError {
    SecretError::ReadOnly {
        reference: reference.to_string(),
    }
}

/// The configured backends by scheme name.
#[derive(Clone)]
pub struct SecretStore {
    backends: Arc<BTreeMap<&'static str, Arc<dyn SecretBackend>>>,
}

impl SecretStore {
    /// A store with exactly these backends (each under its scheme's name).
    pub fn new(backends: impl IntoIterator<Item = Arc<dyn SecretBackend>>) -> Self {
        SecretStore {
            backends: Arc::new(backends.into_iter().map(|b| (b.scheme().name, b)).collect()),
        }
    }

    /// The backends `settings` enable: every registered scheme is asked (`env:` always is).
    pub fn from_settings(settings: &SecretSettings) -> Result<Self, SecretError> {
        let mut backends = Vec::new();
        for scheme in SCHEMES {
            backends.extend((scheme.backend)(settings)?);
        }
        Ok(Self::new(backends))
    }

    /// Reads through the backend for the reference's scheme.
    pub async fn read(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        self.backend(reference)?.read(reference).await
    }

    /// Reads the value and its version through the backend for the reference's scheme.
    pub async fn fetch(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        self.backend(reference)?.fetch(reference).await
    }

    /// Fetches many references, each through its scheme's backend (batched where the
    /// backend can); one answer per reference, in the same order.
    pub async fn fetch_many(&self, references: &[SecretRef]) -> Vec<Result<Fetched, SecretError>> {
        let mut answers: Vec<Option<Result<Fetched, SecretError>>> =
            references.iter().map(|_| None).collect();
        let mut by_scheme: BTreeMap<&'static str, (Vec<usize>, Vec<SecretRef>)> = BTreeMap::new();
        for (i, r) in references.iter().enumerate() {
            let (at, refs) = by_scheme.entry(r.scheme().name).or_default();
            at.push(i);
            refs.push(r.clone());
        }
        for (_, (at, refs)) in by_scheme {
            let fetched = match self.backend(&refs[0]) {
                Ok(backend) => backend.fetch_many(&refs).await,
                Err(e) => refs.iter().map(|_| Err(e.clone())).collect(),
            };
            for (i, answer) in at.into_iter().zip(fetched) {
                answers[i] = Some(answer);
            }
        }
        answers
            .into_iter()
            .zip(references)
            .map(|(a, r)| {
                a.unwrap_or_else(|| {
                    Err(SecretError::Unreadable {
                        reference: r.to_string(),
                        why: "the backend gave no answer for it".into(),
                    })
                })
            })
            .collect()
    }

    /// Writes through the backend for the reference's scheme (read-only schemes refuse).
    pub async fn write(
        &self,
        reference: &SecretRef,
        value: &SecretString,
    ) -> Result<(), SecretError> {
        self.backend(reference)?.write(reference, value).await
    }

    /// Removes through the backend for the reference's scheme (read-only schemes refuse).
    pub async fn remove(&self, reference: &SecretRef) -> Result<(), SecretError> {
        self.backend(reference)?.remove(reference).await
    }

    /// Whether drover could store a value behind this reference here (its scheme is
    /// writable and its backend configured), without touching the backend.
    pub fn check_writable(&self, reference: &SecretRef) -> Result<(), SecretError> {
        if !reference.scheme().writable {
            return Err(read_only(reference));
        }
        self.backend(reference).map(|_| ())
    }

    fn backend(&self, reference: &SecretRef) -> Result<&Arc<dyn SecretBackend>, SecretError> {
        self.backends
            .get(reference.scheme().name)
            .ok_or_else(|| SecretError::Unsupported {
                reference: reference.to_string(),
                scheme: reference.scheme().unconfigured,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: Option<PathBuf>) -> SecretStore {
        SecretStore::from_settings(&SecretSettings {
            dir,
            ..SecretSettings::default()
        })
        .unwrap()
    }

    fn r(s: &str) -> SecretRef {
        s.parse().unwrap()
    }

    #[test]
    fn a_scheme_without_configuration_is_refused_naming_what_to_set() {
        let store = store(None);

        let file = store.check_writable(&r("file:tenants/acme")).unwrap_err();
        let vault = store.check_writable(&r("vault:secret/tenants/acme#pw"));

        assert!(file.to_string().contains("DROVER_SECRETS_DIR"), "{file}");
        assert!(
            vault.unwrap_err().to_string().contains("DROVER_VAULT_ADDR"),
            "vault"
        );
    }

    #[test]
    fn configured_schemes_get_their_backend_and_read_only_ones_refuse_writes() {
        let dir = std::env::temp_dir();
        let store = store(Some(dir));

        assert!(store.check_writable(&r("file:tenants/acme")).is_ok());
        let env = store.check_writable(&r("env:TENANT_ACME")).unwrap_err();
        assert!(matches!(env, SecretError::ReadOnly { .. }), "{env}");
        assert!(
            env.to_string()
                .contains("file:, vault:, aws-sm:, gcp-sm: or azure-kv:"),
            "{env}"
        );
        for (name, backend) in store.backends.iter() {
            assert_eq!(*name, backend.scheme().name);
        }
    }

    #[tokio::test]
    async fn reads_are_routed_to_the_backend_of_the_references_scheme() {
        let store = store(None);

        let err = store
            .read(&r("env:TENANT_DROVER_SURELY_UNSET"))
            .await
            .unwrap_err();

        assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn many_references_are_answered_in_order_each_by_its_own_scheme() {
        std::env::set_var("TENANT_DROVER_FETCH_MANY_A", "a-value");
        let store = store(None);
        let refs = [
            r("env:TENANT_DROVER_FETCH_MANY_A"),
            r("file:tenants/acme"),
            r("env:TENANT_DROVER_SURELY_UNSET"),
        ];

        let answers = store.fetch_many(&refs).await;

        use secrecy::ExposeSecret;
        assert_eq!(answers.len(), 3);
        let first = answers[0].as_ref().unwrap();
        assert_eq!(first.value.expose_secret(), "a-value");
        assert_eq!(first.version, None);
        assert!(matches!(
            answers[1],
            Err(SecretError::NoSecretsDir { .. }) | Err(SecretError::Unsupported { .. })
        ));
        assert!(matches!(answers[2], Err(SecretError::NotFound { .. })));
    }
}
