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

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{BoxFuture, Scheme, SecretBackend, SecretError, SecretRef};

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

    /// Reads the current version of the field named by `reference`.
    #[tracing::instrument(name = "vault_read", skip_all, fields(reference = %reference))]
    async fn read_kv2(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
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
        Ok(value)
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
    fn read<'a>(
        &'a self,
        reference: &'a SecretRef,
    ) -> BoxFuture<'a, Result<SecretString, SecretError>> {
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
        if reference.scheme() != Scheme::Vault {
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

/// Maps a failed request (no HTTP status) to a retryable error, without the URL.
fn transport_error(reference: &SecretRef, e: &reqwest::Error, timeout: Duration) -> SecretError {
    let why = if e.is_timeout() {
        format!(
            "the Vault server did not answer within {}",
            humanize(timeout)
        )
    } else if e.is_connect() {
        format!("cannot connect to the Vault server: {}", root_cause(e))
    } else if e.is_body() || e.is_decode() {
        format!("reading the Vault response failed: {}", root_cause(e))
    } else {
        format!("the request to the Vault server failed: {}", root_cause(e))
    };
    SecretError::Unreadable {
        reference: reference.to_string(),
        why,
    }
}

/// The innermost error's message (e.g. "Connection refused (os error 111)"). reqwest's own
/// top-level message includes the URL, so it is never used.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if std::ptr::addr_eq(cause, e as &dyn std::error::Error) {
        return "request error".into();
    }
    cause.to_string()
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The `errors` strings of a Vault error body (`{"errors": ["..."]}`), joined and capped.
/// These are Vault's own messages ("permission denied", "Vault is sealed"), never secret
/// data; a body of any other shape (a proxy's HTML page) is ignored.
fn vault_errors(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let joined = v
        .get("errors")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if joined.is_empty() {
        return None;
    }
    const MAX: usize = 200;
    Some(match joined.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    })
}

/// Maps a non-200 answer to an error. `body` is only consulted for Vault's `errors` list.
fn status_error(
    reference: &SecretRef,
    loc: &Kv2Location<'_>,
    status: StatusCode,
    body: &[u8],
) -> SecretError {
    let reference = reference.to_string();
    let said = vault_errors(body);
    let detail = |what: String| match &said {
        Some(s) => format!("{what} (Vault says: {s})"),
        None => what,
    };
    let code = status.as_u16();
    match status {
        StatusCode::FORBIDDEN => SecretError::Denied {
            reference,
            why: "permission denied: check DROVER_VAULT_TOKEN and its policy".into(),
        },
        StatusCode::UNAUTHORIZED => SecretError::Denied {
            reference,
            why: "HTTP 401 unauthorized: check DROVER_VAULT_TOKEN and its policy".into(),
        },
        StatusCode::NOT_FOUND => {
            let no_route = said.as_deref().is_some_and(|s| s.contains("no handler"));
            let why = if no_route {
                format!(
                    "HTTP 404: no KV v2 mount named {:?} (check the mount and DROVER_VAULT_NAMESPACE)",
                    loc.mount
                )
            } else {
                format!(
                    "HTTP 404: nothing at path {:?} in mount {:?} (or its current version is deleted)",
                    loc.path, loc.mount
                )
            };
            SecretError::NotFound { reference, why }
        }
        // 412: a performance standby has not caught up yet; 429: rate limited.
        StatusCode::PRECONDITION_FAILED | StatusCode::TOO_MANY_REQUESTS => {
            SecretError::Unreadable {
                reference,
                why: detail(format!("HTTP {code}: try again later")),
            }
        }
        s if s.is_server_error() => SecretError::Unreadable {
            reference,
            why: detail(format!("the Vault server answered HTTP {code}")),
        },
        s if s.is_redirection() => SecretError::Unreadable {
            reference,
            why: format!(
                "the Vault server redirected the request (HTTP {code}); redirects are not followed, point DROVER_VAULT_ADDR at the active node or its load balancer"
            ),
        },
        s if s.is_client_error() => SecretError::Denied {
            reference,
            why: detail(format!("the Vault server rejected the request (HTTP {code})")),
        },
        _ => SecretError::Unreadable {
            reference,
            why: format!("unexpected answer from the Vault server (HTTP {code})"),
        },
    }
}

/// Takes field `loc.field` of the current version out of a KV v2 read response
/// (`{"data": {"data": {FIELD: "value"}, "metadata": {"version": n}}}`), returning it with
/// the version number. The parsed body is dropped before returning; errors never quote it.
fn extract_field(
    reference: &SecretRef,
    loc: &Kv2Location<'_>,
    body: &[u8],
) -> Result<(SecretString, Option<u64>), SecretError> {
    let not_found = |why: String| SecretError::NotFound {
        reference: reference.to_string(),
        why,
    };
    let mut doc: Value = serde_json::from_slice(body).map_err(|_| SecretError::Unreadable {
        reference: reference.to_string(),
        why: "the Vault server's answer is not JSON".into(),
    })?;
    let Some(data) = doc.get_mut("data").and_then(Value::as_object_mut) else {
        return Err(not_found(format!(
            "the answer has no KV v2 data (is {:?} a KV version 2 mount?)",
            loc.mount
        )));
    };
    let version = data
        .get("metadata")
        .and_then(|m| m.get("version"))
        .and_then(Value::as_u64);
    let fields = match data.get_mut("data") {
        Some(Value::Object(fields)) => fields,
        Some(Value::Null) => {
            return Err(not_found(
                "the current version is deleted or destroyed".into(),
            ))
        }
        _ => {
            return Err(not_found(format!(
                "the answer has no KV v2 data (is {:?} a KV version 2 mount?)",
                loc.mount
            )))
        }
    };
    match fields.remove(loc.field) {
        Some(Value::String(s)) => Ok((SecretString::from(s), version)),
        Some(other) => Err(not_found(format!(
            "field {:?} is {}, not a string",
            loc.field,
            json_kind(&other)
        ))),
        None => Err(not_found(format!(
            "the secret has no field {:?}",
            loc.field
        ))),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vref(s: &str) -> SecretRef {
        s.parse().unwrap()
    }

    fn config(addr: &str) -> VaultConfig {
        VaultConfig {
            addr: addr.into(),
            token: SecretString::from("hvs.super-secret-token".to_string()),
            namespace: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn locator_splits_into_mount_path_and_field_and_builds_the_data_url() {
        let r = vref("vault:secret/tenants/eu/acme#password");

        let loc = Kv2Location::parse(&r).unwrap();

        assert_eq!(
            loc,
            Kv2Location {
                mount: "secret",
                path: "tenants/eu/acme",
                field: "password"
            }
        );
        assert_eq!(
            loc.url("http://127.0.0.1:8200"),
            "http://127.0.0.1:8200/v1/secret/data/tenants/eu/acme"
        );
    }

    #[test]
    fn shortest_locator_has_a_one_segment_path() {
        let r = vref("vault:kv/x#f");

        let loc = Kv2Location::parse(&r).unwrap();

        assert_eq!(loc.url("https://v"), "https://v/v1/kv/data/x");
        assert_eq!(loc.field, "f");
    }

    #[test]
    fn non_vault_reference_has_no_kv2_location() {
        assert_eq!(Kv2Location::parse(&vref("file:a/b")), None);
    }

    #[test]
    fn trailing_slash_of_the_address_is_dropped() {
        let backend = VaultBackend::new(config("http://127.0.0.1:8200/")).unwrap();

        assert_eq!(backend.base, "http://127.0.0.1:8200");
    }

    #[test]
    fn address_without_http_scheme_is_refused() {
        for addr in ["127.0.0.1:8200", "ftp://vault", "http://", ""] {
            let err = VaultBackend::new(config(addr)).unwrap_err();

            assert!(matches!(err, SecretError::Unsupported { .. }), "{addr}");
            assert!(err.to_string().contains("http://"), "{err}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let backend = VaultBackend::new(config("http://127.0.0.1:8200")).unwrap();

        let shown = format!("{backend:?} {:?}", config("http://x"));

        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("127.0.0.1:8200"));
    }

    #[test]
    fn response_field_of_the_current_version_is_returned_with_its_version() {
        let r = vref("vault:secret/acme#password");
        let loc = Kv2Location::parse(&r).unwrap();
        let body =
            br#"{"data":{"data":{"password":"s3cret","user":"u"},"metadata":{"version":7}}}"#;

        let (value, version) = extract_field(&r, &loc, body).unwrap();

        assert_eq!(value.expose_secret(), "s3cret");
        assert_eq!(version, Some(7));
    }

    #[test]
    fn missing_field_is_not_found_naming_the_field_not_the_values() {
        let r = vref("vault:secret/acme#password");
        let loc = Kv2Location::parse(&r).unwrap();
        let body = br#"{"data":{"data":{"passwd":"s3cret"},"metadata":{"version":1}}}"#;

        let err = extract_field(&r, &loc, body).unwrap_err();

        assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("\"password\""), "{msg}");
        assert!(msg.contains("vault:secret/acme#password"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn non_string_field_is_not_found_without_its_value() {
        let r = vref("vault:secret/acme#pin");
        let loc = Kv2Location::parse(&r).unwrap();
        let body = br#"{"data":{"data":{"pin":918273},"metadata":{"version":1}}}"#;

        let err = extract_field(&r, &loc, body).unwrap_err();

        assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("a number"), "{err}");
        assert!(!err.to_string().contains("918273"), "{err}");
    }

    #[test]
    fn deleted_version_and_kv1_shaped_answers_are_not_found() {
        let r = vref("vault:secret/acme#password");
        let loc = Kv2Location::parse(&r).unwrap();

        let deleted = br#"{"data":{"data":null,"metadata":{"version":2}}}"#;
        let kv1 = br#"{"data":{"password":"s3cret"}}"#;

        for body in [&deleted[..], &kv1[..]] {
            let err = extract_field(&r, &loc, body).unwrap_err();
            assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn non_json_answer_is_retryable() {
        let r = vref("vault:secret/acme#password");
        let loc = Kv2Location::parse(&r).unwrap();

        let err = extract_field(&r, &loc, b"<html>bad gateway</html>").unwrap_err();

        assert!(err.is_retryable(), "{err}");
    }

    #[test]
    fn statuses_map_to_denied_not_found_and_retryable() {
        let r = vref("vault:secret/acme#password");
        let loc = Kv2Location::parse(&r).unwrap();
        let kind = |e: &SecretError| match e {
            SecretError::Denied { .. } => "denied",
            SecretError::NotFound { .. } => "not found",
            SecretError::Unreadable { .. } => "retryable",
            _ => "other",
        };
        let cases: [(u16, &[u8], &str); 8] = [
            (403, br#"{"errors":["permission denied"]}"#, "denied"),
            (401, b"", "denied"),
            (404, br#"{"errors":[]}"#, "not found"),
            (503, br#"{"errors":["Vault is sealed"]}"#, "retryable"),
            (500, b"", "retryable"),
            (429, b"", "retryable"),
            (307, b"", "retryable"),
            (400, br#"{"errors":["bad"]}"#, "denied"),
        ];
        for (code, body, want) in cases {
            let status = StatusCode::from_u16(code).unwrap();

            let err = status_error(&r, &loc, status, body);

            assert_eq!(kind(&err), want, "{code}: {err}");
            assert_eq!(err.is_retryable(), want == "retryable", "{code}: {err}");
            assert!(err.to_string().contains("vault:secret/acme#password"));
        }
    }

    #[test]
    fn forbidden_names_the_token_variable_and_sealed_says_so() {
        let r = vref("vault:secret/acme#password");
        let loc = Kv2Location::parse(&r).unwrap();

        let denied = status_error(&r, &loc, StatusCode::FORBIDDEN, b"");
        let sealed = status_error(
            &r,
            &loc,
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"errors":["Vault is sealed"]}"#,
        );

        assert!(
            denied.to_string().contains("DROVER_VAULT_TOKEN"),
            "{denied}"
        );
        assert!(sealed.to_string().contains("503"), "{sealed}");
        assert!(sealed.to_string().contains("Vault is sealed"), "{sealed}");
    }

    #[test]
    fn unknown_mount_is_named_in_the_not_found_error() {
        let r = vref("vault:nomount/acme#password");
        let loc = Kv2Location::parse(&r).unwrap();
        let body =
            br#"{"errors":["no handler for route \"nomount/data/acme\". route entry not found."]}"#;

        let err = status_error(&r, &loc, StatusCode::NOT_FOUND, body);

        assert!(
            err.to_string().contains("no KV v2 mount named \"nomount\""),
            "{err}"
        );
    }

    #[test]
    fn long_vault_error_lists_are_capped() {
        let long = format!(r#"{{"errors":["{}"]}}"#, "x".repeat(1000));

        let said = vault_errors(long.as_bytes()).unwrap();

        assert!(said.chars().count() <= 201);
    }
}
