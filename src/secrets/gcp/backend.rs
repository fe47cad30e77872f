//! The `gcp-sm:` backend: Secret Manager's v1 API through `google-cloud-secretmanager-v1`.
//!
//! Read is AccessSecretVersion; the payload's `dataCrc32c` is checked here (the crate does
//! not), and a mismatch is [`SecretError::Unreadable`]. The version drover reports is the
//! number at the end of the version name the service returns (`latest` resolved).
//! Write is AddSecretVersion (with the payload's CRC32C, so the service refuses a damaged
//! one); when the secret does not exist yet it is created first, with automatic
//! replication and the label `drover-created=true`. Remove deletes the secret (every
//! version) only when it carries that label: a secret someone else created is left.
//!
//! The client is built on first use (building it resolves Application Default
//! Credentials, which needs the runtime); a failed build is retried at the next use.
//! Failures are sorted as for Vault: 403/401 → [`SecretError::Denied`], 404 →
//! [`SecretError::NotFound`], 429 (with its `Retry-After`), 5xx, timeouts and transport
//! errors → [`SecretError::Unreadable`] (retryable). Messages carry the service's status and
//! message, never a payload.

use std::time::Duration;

use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::{replication, Replication, Secret, SecretPayload};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

use super::super::cloud::{install_ring_provider, pick, CREATED_MARKER};
use super::super::scheme::Scheme;
use super::super::{BoxFuture, Fetched, SecretBackend, SecretError, SecretRef};
use super::crc32c::crc32c;
use super::{GcpLocation, GcpSmConfig, SCHEME};

/// One attempt's deadline; with one retry of an UNAVAILABLE answer a read takes at most
/// about twice this.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Secret Manager through Google's client. `Debug` shows the endpoint only.
#[derive(Debug)]
pub struct GcpSmBackend {
    config: GcpSmConfig,
    client: OnceCell<SecretManagerService>,
}

impl GcpSmBackend {
    /// A backend for `config`; the client is built on first use.
    pub fn new(config: GcpSmConfig) -> Self {
        install_ring_provider();
        GcpSmBackend {
            config,
            client: OnceCell::new(),
        }
    }

    async fn client(&self, reference: &SecretRef) -> Result<&SecretManagerService, SecretError> {
        self.client
            .get_or_try_init(|| async {
                let mut builder = SecretManagerService::builder()
                    .with_attempt_timeout(ATTEMPT_TIMEOUT)
                    // Only UNAVAILABLE is retried, once: the resolver's cache serves a stale
                    // value and tries again later, which beats holding a request.
                    .with_retry_policy(Aip194Strict.with_attempt_limit(2));
                if let Some(endpoint) = &self.config.endpoint {
                    builder = builder.with_endpoint(endpoint.clone());
                }
                builder.build().await
            })
            .await
            .map_err(|e| SecretError::Unreadable {
                reference: reference.to_string(),
                why: format!("the Secret Manager client could not be built: {e}"),
            })
    }

    fn location(reference: &SecretRef) -> Result<GcpLocation<'_>, SecretError> {
        GcpLocation::parse(reference.locator()).ok_or_else(|| SecretError::Unsupported {
            reference: reference.to_string(),
            scheme: "gcp-sm (the reference is not projects/PROJECT/secrets/NAME)",
        })
    }

    #[tracing::instrument(name = "gcp_sm_fetch", skip_all, fields(reference = %reference))]
    async fn access(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        let loc = Self::location(reference)?;
        let answer = self
            .client(reference)
            .await?
            .access_secret_version()
            .set_name(loc.version_name())
            .send()
            .await
            .map_err(|e| sort(reference, &e))?;
        let payload = answer.payload.unwrap_or_default();
        let want = payload.data_crc32c.ok_or_else(|| SecretError::Unreadable {
            reference: reference.to_string(),
            why: "Secret Manager sent the payload without its dataCrc32c".into(),
        })?;
        if i64::from(crc32c(&payload.data)) != want {
            return Err(SecretError::Unreadable {
                reference: reference.to_string(),
                why: "the payload does not match its dataCrc32c (damaged on the way); not used"
                    .into(),
            });
        }
        let text = String::from_utf8(payload.data.to_vec()).map_err(|_| SecretError::NotFound {
            reference: reference.to_string(),
            why: "the secret's payload is not UTF-8 text".into(),
        })?;
        let version = answer
            .name
            .rsplit_once("/versions/")
            .map(|(_, v)| v.to_string());
        let value = pick(reference, SecretString::from(text), loc.key)?;
        tracing::debug!(version = version.as_deref(), "read gcp-sm secret");
        Ok(Fetched { value, version })
    }

    #[tracing::instrument(name = "gcp_sm_write", skip_all, fields(reference = %reference))]
    async fn add_version(
        &self,
        reference: &SecretRef,
        value: &SecretString,
    ) -> Result<(), SecretError> {
        let loc = Self::location(reference)?;
        if loc.pinned {
            // A pinned version never changes: a new value is always a new version.
            return Err(SecretError::ReadOnly {
                reference: reference.to_string(),
            });
        }
        let client = self.client(reference).await?;
        let text = match loc.key {
            None => SecretString::from(value.expose_secret().to_string()),
            Some(key) => self.with_field(reference, &loc, key, value).await?,
        };
        let data = text.expose_secret().as_bytes().to_vec();
        drop(text);
        let payload = SecretPayload::new()
            .set_data_crc32c(i64::from(crc32c(&data)))
            .set_data(data);
        let add = || {
            client
                .add_secret_version()
                .set_parent(loc.secret_name())
                .set_payload(payload.clone())
                .send()
        };
        match add().await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) != Some(404) => return Err(sort(reference, &e)),
            Err(_) => {}
        }
        let secret = Secret::new()
            .set_replication(Replication::new().set_automatic(replication::Automatic::new()))
            .set_labels([CREATED_MARKER]);
        let created = client
            .create_secret()
            .set_parent(format!("projects/{}", loc.project))
            .set_secret_id(loc.secret)
            .set_secret(secret)
            .send()
            .await;
        match created {
            // Someone created it since: add the version to theirs.
            Err(e) if status_of(&e) != Some(409) => return Err(sort(reference, &e)),
            _ => {}
        }
        add().await.map(|_| ()).map_err(|e| sort(reference, &e))
    }

    /// The latest version's JSON object with `key` set to `value` (a new object when the
    /// secret has no version yet): the other fields are kept.
    async fn with_field(
        &self,
        reference: &SecretRef,
        loc: &GcpLocation<'_>,
        key: &str,
        value: &SecretString,
    ) -> Result<SecretString, SecretError> {
        let latest = GcpLocation {
            version: "latest",
            key: None,
            ..loc.clone()
        };
        let current = self
            .client(reference)
            .await?
            .access_secret_version()
            .set_name(latest.version_name())
            .send()
            .await;
        let mut doc = match current {
            Ok(answer) => {
                let data = answer.payload.unwrap_or_default().data;
                match serde_json::from_slice::<serde_json::Value>(&data) {
                    Ok(serde_json::Value::Object(fields)) => fields,
                    _ => {
                        return Err(SecretError::NotFound {
                            reference: reference.to_string(),
                            why: "the secret holds something other than a JSON object; drover will not replace it".into(),
                        })
                    }
                }
            }
            Err(e) if status_of(&e) == Some(404) => serde_json::Map::new(),
            Err(e) => return Err(sort(reference, &e)),
        };
        doc.insert(
            key.to_string(),
            serde_json::Value::String(value.expose_secret().to_string()),
        );
        Ok(SecretString::from(
            serde_json::Value::Object(doc).to_string(),
        ))
    }

    #[tracing::instrument(name = "gcp_sm_remove", skip_all, fields(reference = %reference))]
    async fn delete(&self, reference: &SecretRef) -> Result<(), SecretError> {
        let loc = Self::location(reference)?;
        let client = self.client(reference).await?;
        let secret = match client.get_secret().set_name(loc.secret_name()).send().await {
            Ok(s) => s,
            Err(e) if status_of(&e) == Some(404) => return Ok(()),
            Err(e) => return Err(sort(reference, &e)),
        };
        let (key, mark) = CREATED_MARKER;
        if secret.labels.get(key).map(String::as_str) != Some(mark) {
            tracing::info!("gcp-sm secret was not created by drover; left in place");
            return Ok(());
        }
        match client
            .delete_secret()
            .set_name(loc.secret_name())
            .set_etag(secret.etag)
            .send()
            .await
        {
            Err(e) if status_of(&e) != Some(404) => Err(sort(reference, &e)),
            _ => Ok(()),
        }
    }
}

/// The HTTP status of a service error, or the one its RPC code stands for.
fn status_of(e: &google_cloud_secretmanager_v1::Error) -> Option<u16> {
    if let Some(code) = e.http_status_code() {
        return Some(code);
    }
    e.status().map(|s| match s.code {
        Code::PermissionDenied => 403,
        Code::Unauthenticated => 401,
        Code::NotFound => 404,
        Code::AlreadyExists => 409,
        Code::ResourceExhausted => 429,
        _ => 500,
    })
}

/// Sorts a client error into drover's kinds (see the module header).
fn sort(reference: &SecretRef, e: &google_cloud_secretmanager_v1::Error) -> SecretError {
    let reference = reference.to_string();
    let message = e
        .status()
        .map(|s| format!("{:?}: {}", s.code, s.message))
        .unwrap_or_default();
    match status_of(e) {
        Some(401 | 403) => SecretError::Denied {
            reference,
            why: format!("Secret Manager refused drover's credentials ({message})"),
        },
        Some(404) => SecretError::NotFound {
            reference,
            why: format!("Secret Manager has no such secret or version ({message})"),
        },
        Some(429) => {
            let after = e
                .http_headers()
                .and_then(|h| h.get("retry-after"))
                .and_then(|v| v.to_str().ok())
                .map(|s| format!("; retry after {s} s"))
                .unwrap_or_default();
            SecretError::Unreadable {
                reference,
                why: format!("Secret Manager's rate limit was reached{after} ({message})"),
            }
        }
        Some(code) => SecretError::Unreadable {
            reference,
            why: format!("Secret Manager answered HTTP {code} ({message})"),
        },
        None if e.is_authentication() => SecretError::Unreadable {
            reference,
            why: format!("no Google credentials could be obtained: {e}"),
        },
        None if e.is_timeout() => SecretError::Unreadable {
            reference,
            why: format!("Secret Manager did not answer within {ATTEMPT_TIMEOUT:?}"),
        },
        None => SecretError::Unreadable {
            reference,
            why: format!("Secret Manager could not be reached: {e}"),
        },
    }
}

impl SecretBackend for GcpSmBackend {
    fn scheme(&self) -> &'static Scheme {
        &SCHEME
    }

    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>> {
        Box::pin(async move { self.access(reference).await.map(|f| f.value) })
    }

    fn fetch<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<Fetched, SecretError>> {
        Box::pin(self.access(reference))
    }

    fn write<'a>(
        &'a self,
        reference: &'a SecretRef,
        value: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(self.add_version(reference, value))
    }

    fn remove<'a>(&'a self, reference: &'a SecretRef) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(self.delete(reference))
    }
}
