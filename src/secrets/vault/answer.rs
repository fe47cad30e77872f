//! How Vault's answers (and failures to get one) become values and [`SecretError`]s: a
//! transient failure is retryable, a refusal is `Denied`, a missing path, mount or field is
//! `NotFound`. Messages name the reference and the status, never a body's secret data.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;

use super::Kv2Location;
use crate::secrets::{SecretError, SecretRef};

/// Maps a failed request (no HTTP status) to a retryable error, without the URL.
pub(super) fn transport_error(
    reference: &SecretRef,
    e: &reqwest::Error,
    timeout: Duration,
) -> SecretError {
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
pub(super) fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if std::ptr::addr_eq(cause, e as &dyn std::error::Error) {
        return "request error".into();
    }
    cause.to_string()
}

pub(super) fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The `errors` strings of a Vault error body (`{"errors": ["..."]}`), joined and capped.
/// These are Vault's own messages ("permission denied", "Vault is sealed"), never secret
/// data; a body of any other shape (a proxy's HTML page) is ignored.
pub(super) fn vault_errors(body: &[u8]) -> Option<String> {
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
pub(super) fn status_error(
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
pub(super) fn extract_field(
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

pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
