//! `vault:mount/path#field`: HashiCorp Vault / OpenBao KV v2 over HTTP, token auth.
//!
//! A reference `vault:secret/tenants/acme#password` reads
//! `GET {addr}/v1/secret/data/tenants/acme` and returns field `password` of the current
//! version. There is no cache at this layer: every read asks the server.
//!
//! Provisioning writes a field with check-and-set on the version it read (the secret's
//! other fields are kept; a concurrent writer makes the write fail, retryably, instead of
//! one writer silently undoing the other) and removes it the same way; a secret left
//! with no fields has its metadata (every version) deleted.
//!
//! Failures are sorted for the caller: the server being unreachable, slow, sealed or
//! failing (5xx, 429) is [`SecretError::Unreadable`] (retryable); a refused token or policy
//! (403) is [`SecretError::Denied`]; a missing path, mount or field is
//! [`SecretError::NotFound`]. Errors name the reference and the HTTP status, never the
//! token or anything from a successful response's body.

mod answer;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use std::sync::Arc;

use answer::{extract_field, status_error, transport_error, vault_errors};

use super::reference::{is_name_char, valid_path};
use super::scheme::Scheme;
use super::{
    BoxFuture, Fetched, RefScope, ScopeError, SecretBackend, SecretError, SecretRef,
    SecretSettings, VaultScope,
};

/// The `vault:` scheme.
pub const SCHEME: Scheme = Scheme {
    name: "vault",
    locator_pattern: "[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+#[A-Za-z0-9._-]+",
    valid_locator,
    expected: "vault: reference must be vault:mount/path#field (letters, digits, '.', '_', '-')",
    in_scope,
    writable: true,
    cacheable: true,
    backend,
    unconfigured: "vault (set DROVER_VAULT_ADDR and DROVER_VAULT_TOKEN)",
};

fn valid_locator(locator: &str) -> bool {
    match locator.split_once('#') {
        Some((path, field)) => {
            path.contains('/')
                && valid_path(path)
                && !field.is_empty()
                && field.chars().all(is_name_char)
        }
        None => false,
    }
}

/// Only paths at or below one of `vault_allowed_prefixes` (unless `*`): the daemon's token
/// may read far more than tenants' passwords.
fn in_scope(scope: &RefScope, _: super::Purpose, r: &SecretRef) -> Result<(), ScopeError> {
    let path = r.locator().split('#').next().unwrap_or_default();
    match scope.vault() {
        VaultScope::Any => Ok(()),
        VaultScope::Under(prefixes) => {
            let inside = prefixes.iter().any(|p| {
                path.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            });
            if inside {
                Ok(())
            } else {
                Err(ScopeError::Vault {
                    allowed: prefixes
                        .iter()
                        .map(|p| format!("{p}/"))
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
    }
}

fn backend(settings: &SecretSettings) -> Result<Option<Arc<dyn SecretBackend>>, SecretError> {
    match &settings.vault {
        Some(v) => Ok(Some(Arc::new(VaultBackend::new(v.clone())?))),
        None => Ok(None),
    }
}

/// How to reach Vault.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Base address, e.g. `http://127.0.0.1:8200`.
    pub addr: String,
    /// Token sent as `X-Vault-Token`.
    pub token: SecretString,
    /// Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    pub namespace: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// KV v2 reader. `Debug` shows the address, namespace and timeout, never the token.
pub struct VaultBackend {
    /// `addr` without a trailing `/`.
    base: String,
    namespace: Option<String>,
    timeout: Duration,
    /// The token and namespace headers (the token marked sensitive), sent on every request.
    headers: HeaderMap,
    http: reqwest::Client,
}

impl fmt::Debug for VaultBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultBackend")
            .field("addr", &self.base)
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

/// A `new` failure: the configuration cannot work. `what` is inserted into the message
/// "the {what} backend is not configured".
fn misconfigured(what: &'static str) -> SecretError {
    SecretError::Unsupported {
        reference: "vault:*".into(),
        scheme: what,
    }
}

impl VaultBackend {
    /// A backend for `config`: checks the address, token and namespace and builds one HTTP
    /// client (with `config.timeout` per request) for every read.
    pub fn new(config: VaultConfig) -> Result<Self, SecretError> {
        let base = config.addr.trim().trim_end_matches('/').to_string();
        let scheme_ok = base.starts_with("http://") || base.starts_with("https://");
        if !scheme_ok || reqwest::Url::parse(&base).map_or(true, |u| u.host().is_none()) {
            return Err(misconfigured(
                "vault (DROVER_VAULT_ADDR must be an http:// or https:// URL)",
            ));
        }
        if config.timeout.is_zero() {
            return Err(misconfigured(
                "vault (DROVER_VAULT_TIMEOUT must be longer than zero)",
            ));
        }
        let mut headers = HeaderMap::new();
        let mut token = HeaderValue::from_str(config.token.expose_secret())
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                misconfigured("vault (DROVER_VAULT_TOKEN is empty or not a valid header value)")
            })?;
        token.set_sensitive(true);
        headers.insert("X-Vault-Token", token);
        let namespace = config.namespace.filter(|ns| !ns.trim().is_empty());
        if let Some(ns) = &namespace {
            let value = HeaderValue::from_str(ns.trim()).map_err(|_| {
                misconfigured("vault (DROVER_VAULT_NAMESPACE is not a valid header value)")
            })?;
            headers.insert("X-Vault-Namespace", value);
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            // A redirect would carry X-Vault-Token to wherever it points; reads go to the
            // configured address only (HA standbys forward requests to the active node).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| misconfigured("vault (its HTTP client could not be built)"))?;
        Ok(VaultBackend {
            base,
            namespace,
            timeout: config.timeout,
            headers,
            http,
        })
    }

    /// Reads the current version of the field named by `reference`, with the KV v2
    /// metadata version it came from (what the cache compares to notice a rotation).
    #[tracing::instrument(name = "vault_read", skip_all, fields(reference = %reference))]
    async fn read_kv2(&self, reference: &SecretRef) -> Result<Fetched, SecretError> {
        let Some(loc) = Kv2Location::parse(reference) else {
            return Err(SecretError::Unsupported {
                reference: reference.to_string(),
                scheme: "vault (the reference is not vault:mount/path#field)",
            });
        };
        let url = loc.url(&self.base);
        let response = self
            .http
            .get(&url)
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| transport_error(reference, &e, self.timeout))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            if status.is_success() {
                transport_error(reference, &e, self.timeout)
            } else {
                // The status alone says what went wrong; a cut-off error body does not matter.
                status_error(reference, &loc, status, &[])
            }
        })?;
        if status != StatusCode::OK {
            return Err(status_error(reference, &loc, status, &body));
        }
        let (value, version) = extract_field(reference, &loc, &body)?;
        tracing::debug!(version, "read vault secret");
        Ok(Fetched {
            value,
            version: version.map(|v| v.to_string()),
        })
    }

    /// The fields of the current version and that version (0 and no fields when the path
    /// holds nothing yet, which is what check-and-set expects for a first write).
    async fn current(
        &self,
        reference: &SecretRef,
        loc: &Kv2Location<'_>,
    ) -> Result<(serde_json::Map<String, Value>, u64), SecretError> {
        let response = self
            .http
            .get(loc.url(&self.base))
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| transport_error(reference, &e, self.timeout))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(reference, &e, self.timeout))?;
        let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let version = doc["data"]["metadata"]["version"].as_u64().unwrap_or(0);
        match status {
            StatusCode::OK => match &doc["data"]["data"] {
                Value::Object(fields) => Ok((fields.clone(), version)),
                _ => Ok((serde_json::Map::new(), version)),
            },
            StatusCode::NOT_FOUND
                if vault_errors(&body).is_none_or(|s| !s.contains("no handler")) =>
            {
                Ok((serde_json::Map::new(), version))
            }
            _ => Err(status_error(reference, loc, status, &body)),
        }
    }

    /// Sends `fields` as the next version, if the current one is still `cas`.
    async fn put(
        &self,
        reference: &SecretRef,
        loc: &Kv2Location<'_>,
        fields: serde_json::Map<String, Value>,
        cas: u64,
    ) -> Result<(), SecretError> {
        let body = serde_json::json!({ "options": { "cas": cas }, "data": fields });
        let response = self
            .http
            .post(loc.url(&self.base))
            .headers(self.headers.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(reference, &e, self.timeout))?;
        drop(body);
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let answer = response.bytes().await.unwrap_or_default();
        if status == StatusCode::BAD_REQUEST
            && vault_errors(&answer).is_some_and(|s| s.contains("check-and-set"))
        {
            return Err(SecretError::Unreadable {
                reference: reference.to_string(),
                why: "the secret changed while drover was writing it; try again".into(),
            });
        }
        Err(status_error(reference, loc, status, &answer))
    }

    fn location<'r>(reference: &'r SecretRef) -> Result<Kv2Location<'r>, SecretError> {
        Kv2Location::parse(reference).ok_or_else(|| SecretError::Unsupported {
            reference: reference.to_string(),
            scheme: "vault (the reference is not vault:mount/path#field)",
        })
    }

    /// Sets the reference's field, keeping the secret's other fields.
    #[tracing::instrument(name = "vault_write", skip_all, fields(reference = %reference))]
    async fn write_kv2(
        &self,
        reference: &SecretRef,
        value: &SecretString,
    ) -> Result<(), SecretError> {
        let loc = Self::location(reference)?;
        let (mut fields, version) = self.current(reference, &loc).await?;
        fields.insert(
            loc.field.to_string(),
            Value::String(value.expose_secret().to_string()),
        );
        self.put(reference, &loc, fields, version).await
    }

    /// Removes the reference's field; the whole secret when nothing else is left in it.
    #[tracing::instrument(name = "vault_remove", skip_all, fields(reference = %reference))]
    async fn remove_kv2(&self, reference: &SecretRef) -> Result<(), SecretError> {
        let loc = Self::location(reference)?;
        let (mut fields, version) = self.current(reference, &loc).await?;
        if fields.remove(loc.field).is_none() {
            return Ok(());
        }
        if !fields.is_empty() {
            return self.put(reference, &loc, fields, version).await;
        }
        let url = format!("{}/v1/{}/metadata/{}", self.base, loc.mount, loc.path);
        let response = self
            .http
            .delete(url)
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| transport_error(reference, &e, self.timeout))?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        let answer = response.bytes().await.unwrap_or_default();
        Err(status_error(reference, &loc, status, &answer))
    }
}

impl SecretBackend for VaultBackend {
    fn scheme(&self) -> &'static Scheme {
        &SCHEME
    }

    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>> {
        Box::pin(async move { self.read_kv2(reference).await.map(|f| f.value) })
    }

    fn fetch<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<Fetched, SecretError>> {
        Box::pin(self.read_kv2(reference))
    }

    fn write<'a>(
        &'a self,
        reference: &'a SecretRef,
        value: &'a SecretString,
    ) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(self.write_kv2(reference, value))
    }

    fn remove<'a>(&'a self, reference: &'a SecretRef) -> BoxFuture<'a, Result<(), SecretError>> {
        Box::pin(self.remove_kv2(reference))
    }
}

/// Where a `vault:` reference points: `mount/path#field`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kv2Location<'a> {
    mount: &'a str,
    path: &'a str,
    field: &'a str,
}

impl<'a> Kv2Location<'a> {
    /// Splits `mount/path/more#field`; `None` unless the reference is a well-formed
    /// `vault:` reference (`SecretRef` parsing already guarantees that for vault refs).
    fn parse(reference: &'a SecretRef) -> Option<Self> {
        if reference.scheme() != &SCHEME {
            return None;
        }
        let (full, field) = reference.locator().split_once('#')?;
        let (mount, path) = full.split_once('/')?;
        let fine = |s: &str| !s.is_empty() && !s.starts_with('/') && !s.ends_with('/');
        (fine(mount) && fine(path) && !field.is_empty()).then_some(Kv2Location {
            mount,
            path,
            field,
        })
    }

    /// `{base}/v1/{mount}/data/{path}`. The locator's characters are limited to letters,
    /// digits, `.`, `_`, `-` and `/` by reference validation, so nothing needs escaping.
    fn url(&self, base: &str) -> String {
        format!("{base}/v1/{}/data/{}", self.mount, self.path)
    }
}
