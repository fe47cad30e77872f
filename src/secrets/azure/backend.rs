//! The `azure-kv:` backend: Key Vault's secrets API through `azure_security_keyvault_secrets`.
//!
//! Read is Get Secret (latest version); the version drover reports is the last segment of
//! the secret's `id` (`https://VAULT.vault.azure.net/secrets/NAME/VERSION`). Write is Set
//! Secret (a new version; with `#key` the latest version's other JSON fields are kept):
//! a secret drover creates gets the tag `drover-created=true`, one that exists keeps its
//! tags (Key Vault's tags belong to a version). Remove is Delete Secret when the latest version
//! carries that tag: the vault soft-deletes it, and purging is left to the vault's own
//! retention (drover's identity needs no purge right).
//!
//! Credentials (`azure_identity`, chosen once when the backend is built): with
//! `AZURE_FEDERATED_TOKEN_FILE` set (AKS workload identity injects it with
//! `AZURE_CLIENT_ID` and `AZURE_TENANT_ID`) a `WorkloadIdentityCredential`; otherwise a
//! `ManagedIdentityCredential`, which finds the host's managed identity itself (App Service
//! and Container Apps through `IDENTITY_ENDPOINT`, VMs through IMDS), user-assigned when
//! `AZURE_CLIENT_ID` names one. No developer credentials (Azure CLI) in a daemon.
//!
//! The client authenticates the way Key Vault asks: the first request goes without a token,
//! the vault answers 401 with `WWW-Authenticate: Bearer authorization=…, resource=…`, and the
//! client asks the credential for a token for that resource. `azure_core` sends bearer tokens
//! over https only, so the HTTP client is drover's own: reqwest on rustls with ring, the
//! public roots plus `azure_kv_ca_file`. The SDK's retries are off: a throttled (429) or
//! failing read is [`SecretError::Unreadable`] at once and the resolver's cache serves the
//! stale value meanwhile. 401/403 → [`SecretError::Denied`], 404 → [`SecretError::NotFound`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::headers::HeaderName;
use azure_core::http::{ClientOptions, RequestContent, RetryOptions, Transport};
use azure_identity::{
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use azure_security_keyvault_secrets::models::SetSecretParameters;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use secrecy::{ExposeSecret, SecretString};

use super::super::cloud::{install_ring_provider, pick, CREATED_MARKER};
use super::super::scheme::Scheme;
use super::super::{BoxFuture, Fetched, SecretBackend, SecretError, SecretRef};
use super::{AzureKvConfig, AzureLocation, SCHEME};

/// One request's deadline (connect included).
const TIMEOUT: Duration = Duration::from_secs(5);

/// Key Vault through Microsoft's client; one client per vault (each remembers the scope its
/// vault's challenge named). `Debug` shows the endpoint override only.
pub struct AzureKvBackend {
    config: AzureKvConfig,
    options: ClientOptions,
    credential: Arc<dyn TokenCredential>,
    clients: Mutex<HashMap<String, Arc<SecretClient>>>,
}

impl std::fmt::Debug for AzureKvBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKvBackend")
            .field("endpoint", &self.config.endpoint)
            .finish_non_exhaustive()
    }
}

fn misconfigured(what: &'static str) -> SecretError {
    SecretError::Unsupported {
        reference: "azure-kv:*".into(),
        scheme: what,
    }
}

impl AzureKvBackend {
    /// Builds the HTTP client and picks the credential (see the module header).
    pub fn new(config: AzureKvConfig) -> Result<Self, SecretError> {
        install_ring_provider();
        let http = http_client(&config)?;
        let options = ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        };
        let credential = credential(&options)?;
        Ok(AzureKvBackend {
            config,
            options,
            credential,
            clients: Mutex::new(HashMap::new()),
        })
    }

    fn client(&self, reference: &SecretRef, vault: &str) -> Result<Arc<SecretClient>, SecretError> {
        let key = vault.to_ascii_lowercase();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let options = SecretClientOptions {
            client_options: self.options.clone(),
            // The challenge's resource (vault.azure.net) must match the vault's host; an
            // endpoint override has another host by design.
            verify_challenge_resource: Some(self.config.endpoint.is_none()),
            ..SecretClientOptions::default()
        };
        let client = SecretClient::new(
            &self.config.vault_url(vault),
            self.credential.clone(),
            Some(options),
        )
        .map_err(|e| SecretError::Unsupported {
            reference: reference.to_string(),
            scheme: leak_free_reason(&e),
        })?;
        let client = Arc::new(client);
        clients.insert(key, client.clone());
        Ok(client)
    }

    fn location(reference: &SecretRef) -> Result<AzureLocation<'_>, SecretError> {
        AzureLocation::parse(reference.locator()).ok_or_else(|| SecretError::Unsupported {
            reference: reference.to_string(),
            scheme: "azure-kv (the reference is not VAULT/NAME)",
        })
    }

    /// The latest version's value and version, and its tags.
    async fn latest(
        &self,
        reference: &SecretRef,
        loc: &AzureLocation<'_>,
    ) -> Result<(SecretString, Option<String>, HashMap<String, String>), SecretError> {
        let client = self.client(reference, loc.vault)?;
        let secret = client
            .get_secret(loc.name, None)
            .await
            .map_err(|e| sort(reference, &e))?
            .into_model()
            .map_err(|e| sort(reference, &e))?;
        let value = secret.value.ok_or_else(|| SecretError::NotFound {
            reference: reference.to_string(),
            why: "Key Vault returned the secret without a value".into(),
        })?;
        let version = secret
            .id
            .as_deref()
            .and_then(|id| id.trim_end_matches('/').rsplit('/').next())
            .map(str::to_string);
        Ok((
            SecretString::from(value),
            version,
            secret.tags.unwrap_or_default(),
        ))
    }

    #[tracing::instrument(name = "azure_kv_fetch", skip_all, fields(reference = %reference))]
    async fn get(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        let loc = Self::location(reference)?;
        let (value, version, _) = self.latest(reference, &loc).await?;
        let value = pick(reference, value, loc.key)?;
        tracing::debug!(version = version.as_deref(), "read azure-kv secret");
        Ok(Fetched { value, version })
    }

    #[tracing::instrument(name = "azure_kv_write", skip_all, fields(reference = %reference))]
    async fn set(&self, reference: &SecretRef, value: &SecretString) -> Result<(), SecretError> {
        let loc = Self::location(reference)?;
        // Tags belong to a version: a secret drover creates gets the marker, one that
        // exists keeps the tags it had (so a secret someone else made never gains it).
        let current = match self.latest(reference, &loc).await {
            Ok((value, _, tags)) => Some((value, tags)),
            Err(SecretError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let text = match loc.key {
            None => value.expose_secret().to_string(),
            Some(key) => {
                let mut doc = match &current {
                    None => serde_json::Map::new(),
                    Some((old, _)) => match serde_json::from_str(old.expose_secret()) {
                        Ok(serde_json::Value::Object(fields)) => fields,
                        _ => return Err(SecretError::NotFound {
                            reference: reference.to_string(),
                            why: "the secret holds something other than a JSON object; drover will not replace it".into(),
                        }),
                    },
                };
                doc.insert(
                    key.to_string(),
                    serde_json::Value::String(value.expose_secret().to_string()),
                );
                serde_json::Value::Object(doc).to_string()
            }
        };
        let tags = match current {
            Some((_, tags)) => tags,
            None => {
                let (tag, mark) = CREATED_MARKER;
                HashMap::from([(tag.to_string(), mark.to_string())])
            }
        };
        let parameters = SetSecretParameters {
            value: Some(text),
            tags: Some(tags),
            ..SetSecretParameters::default()
        };
        let body: RequestContent<SetSecretParameters> =
            parameters.try_into().map_err(|e| sort(reference, &e))?;
        self.client(reference, loc.vault)?
            .set_secret(loc.name, body, None)
            .await
            .map(|_| ())
            .map_err(|e| sort(reference, &e))
    }

    #[tracing::instrument(name = "azure_kv_remove", skip_all, fields(reference = %reference))]
    async fn delete(&self, reference: &SecretRef) -> Result<(), SecretError> {
        let loc = Self::location(reference)?;
        let tags = match self.latest(reference, &loc).await {
            Ok((_, _, tags)) => tags,
            Err(SecretError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let (tag, mark) = CREATED_MARKER;
        if tags.get(tag).map(String::as_str) != Some(mark) {
            tracing::info!("azure-kv secret was not created by drover; left in place");
            return Ok(());
        }
        match self
            .client(reference, loc.vault)?
            .delete_secret(loc.name, None)
            .await
        {
            Err(e) if e.http_status().map(u16::from) != Some(404) => Err(sort(reference, &e)),
            _ => Ok(()),
        }
    }
}

/// reqwest on rustls with ring, trusting the public roots and `azure_kv_ca_file`; http/1.1.
fn http_client(config: &AzureKvConfig) -> Result<reqwest013::Client, SecretError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path)
            .map_err(|_| misconfigured("azure-kv (DROVER_AZURE_KV_CA_FILE cannot be read)"))?;
        let certs = rustls_pemfile_certs(&pem);
        if certs.is_empty() || certs.into_iter().any(|c| roots.add(c).is_err()) {
            return Err(misconfigured(
                "azure-kv (DROVER_AZURE_KV_CA_FILE holds no usable PEM certificate)",
            ));
        }
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| misconfigured("azure-kv (TLS could not be set up)"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest013::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        // A redirect would carry the bearer token elsewhere.
        .redirect(reqwest013::redirect::Policy::none())
        .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|_| misconfigured("azure-kv (its HTTP client could not be built)"))
}

/// The certificates in a PEM bundle (anything else in it is skipped).
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// Workload identity when the pod has it, the host's managed identity otherwise.
fn credential(options: &ClientOptions) -> Result<Arc<dyn TokenCredential>, SecretError> {
    if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        let mut o = WorkloadIdentityCredentialOptions::default();
        o.credential_options.client_options = options.clone();
        return WorkloadIdentityCredential::new(Some(o))
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(|_| {
                misconfigured("azure-kv (workload identity needs AZURE_CLIENT_ID and AZURE_TENANT_ID beside AZURE_FEDERATED_TOKEN_FILE)")
            });
    }
    let o = ManagedIdentityCredentialOptions {
        user_assigned_id: std::env::var("AZURE_CLIENT_ID")
            .ok()
            .filter(|id| !id.is_empty())
            .map(UserAssignedId::ClientId),
        client_options: options.clone(),
    };
    ManagedIdentityCredential::new(Some(o))
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(|_| misconfigured("azure-kv (no managed identity could be set up)"))
}

/// A fixed description of a client that could not be built (the SDK's message may name
/// the URL; the kind is enough here).
fn leak_free_reason(_: &azure_core::Error) -> &'static str {
    "azure-kv (the Key Vault client could not be built from azure_kv_endpoint)"
}

/// Sorts a client error into drover's kinds (see the module header).
fn sort(reference: &SecretRef, e: &azure_core::Error) -> SecretError {
    let reference = reference.to_string();
    let Some(status) = e.http_status() else {
        let why = match e.kind() {
            azure_core::error::ErrorKind::Credential => {
                format!("no Azure token could be obtained: {e}")
            }
            _ => format!("Key Vault could not be reached: {e}"),
        };
        return SecretError::Unreadable { reference, why };
    };
    let code = u16::from(status);
    let service = match e.kind() {
        azure_core::error::ErrorKind::HttpResponse {
            error_code: Some(c),
            ..
        } => format!(" ({c})"),
        _ => String::new(),
    };
    match code {
        401 | 403 => SecretError::Denied {
            reference,
            why: format!("Key Vault refused drover's identity: HTTP {code}{service}"),
        },
        404 => SecretError::NotFound {
            reference,
            why: format!("Key Vault has no such secret{service}"),
        },
        429 => {
            let after = retry_after(e)
                .map(|s| format!("; retry after {s} s"))
                .unwrap_or_default();
            SecretError::Unreadable {
                reference,
                why: format!("Key Vault's rate limit was reached{after}"),
            }
        }
        _ => SecretError::Unreadable {
            reference,
            why: format!("Key Vault answered HTTP {code}{service}"),
        },
    }
}

fn retry_after(e: &azure_core::Error) -> Option<String> {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse {
            raw_response: Some(raw),
            ..
        } => raw
            .headers()
            .get_optional_str(&HeaderName::from_static("retry-after"))
            .map(str::to_string),
        _ => None,
    }
}

impl SecretBackend for AzureKvBackend {
    fn scheme(&self) -> &'static Scheme {
        &SCHEME
    }

    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>> {
        Box::pin(async move { self.get(reference).await.map(|f| f.value) })
    }

    fn fetch<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<Fetched, SecretError>> {
        Box::pin(self.get(reference))
    }

    fn write<'a>(
        &'a self,
        reference: &'a SecretRef,
        value: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(self.set(reference, value))
    }

    fn remove<'a>(&'a self, reference: &'a SecretRef) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(self.delete(reference))
    }
}
