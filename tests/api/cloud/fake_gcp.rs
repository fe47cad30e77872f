//! A protocol fake of Google Secret Manager's REST API (v1) and of Google's OAuth 2.0 token
//! endpoint, for the `gcp-sm:` backend: no emulator of Secret Manager installs here.
//!
//! It answers as these pages document:
//! - https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets.versions/access
//!   (`GET /v1/{name=projects/*/secrets/*/versions/*}:access` → `AccessSecretVersionResponse`:
//!   `name` with the project number and the resolved version number, `payload.data`
//!   base64, `payload.dataCrc32c` an int64 as a JSON string)
//! - https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets/addVersion
//!   (`POST /v1/{parent=projects/*/secrets/*}:addVersion`, `SecretPayload` with its CRC32C)
//! - https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets/create
//!   (`POST /v1/{parent=projects/*}/secrets?secretId=…`, `Secret` with `replication.automatic`
//!   and `labels`; 409 ALREADY_EXISTS for a taken id)
//! - https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets/get and
//!   https://cloud.google.com/secret-manager/docs/reference/rest/v1/projects.secrets/delete
//! - https://cloud.google.com/apis/design/errors#http_mapping (error bodies:
//!   `{"error": {"code", "message", "status"}}`, 403 PERMISSION_DENIED, 404 NOT_FOUND,
//!   429 RESOURCE_EXHAUSTED; the fake adds `Retry-After` to its 429)
//! - https://developers.google.com/identity/protocols/oauth2/web-server#offline (the
//!   `refresh_token` grant an `authorized_user` Application Default Credentials file uses:
//!   `POST token_uri`, a form or JSON body, JSON `access_token`/`expires_in`/`token_type`)
//!
//! Every Secret Manager request must carry `Authorization: Bearer <the token it issued>`
//! (401 UNAUTHENTICATED otherwise), and the fake records which did.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};

/// The token the fake issues and expects.
pub const TOKEN: &str = "ya29.fake-gcp-access-token";
/// What the fake puts where real answers carry the project number.
const PROJECT_NUMBER: &str = "123456789012";

/// One stored secret.
#[derive(Debug, Clone, Default)]
pub struct FakeSecret {
    pub labels: BTreeMap<String, String>,
    /// Versions' payloads, version n at index n-1.
    pub versions: Vec<Vec<u8>>,
}

/// A failure the fake answers for one secret id instead of its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status(u16),
    /// A payload whose `dataCrc32c` does not match it.
    BadCrc,
}

#[derive(Default)]
struct Inner {
    /// By `project/secret`.
    secrets: BTreeMap<String, FakeSecret>,
    faults: BTreeMap<String, Fault>,
    /// `METHOD path` of every Secret Manager request, and whether it carried the token.
    log: Vec<(String, bool)>,
    tokens_issued: usize,
}

/// The running fake; stops with the test's runtime.
#[derive(Clone)]
pub struct FakeGcp {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeGcp {
    pub async fn start() -> FakeGcp {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeGcp { url, inner }
    }

    /// An `authorized_user` ADC file whose token endpoint is this fake.
    pub fn adc_json(&self) -> String {
        json!({
            "type": "authorized_user",
            "client_id": "fake-client.apps.googleusercontent.com",
            "client_secret": "fake-client-secret",
            "refresh_token": "fake-refresh-token",
            "token_uri": format!("{}/token", self.url),
        })
        .to_string()
    }

    /// Stores `value` as a new version of `project/secret` (creating it with `labels`).
    pub fn put(&self, project: &str, secret: &str, value: &str, labels: &[(&str, &str)]) {
        let mut inner = self.inner.lock().unwrap();
        let s = inner
            .secrets
            .entry(format!("{project}/{secret}"))
            .or_default();
        for (k, v) in labels {
            s.labels.insert(k.to_string(), v.to_string());
        }
        s.versions.push(value.as_bytes().to_vec());
    }

    pub fn secret(&self, project: &str, secret: &str) -> Option<FakeSecret> {
        let inner = self.inner.lock().unwrap();
        inner.secrets.get(&format!("{project}/{secret}")).cloned()
    }

    pub fn fail(&self, secret: &str, fault: Option<Fault>) {
        let mut inner = self.inner.lock().unwrap();
        match fault {
            Some(f) => inner.faults.insert(secret.to_string(), f),
            None => inner.faults.remove(secret),
        };
    }

    /// Requests for paths containing `part`: (count, how many carried the token).
    pub fn requests(&self, part: &str) -> (usize, usize) {
        let inner = self.inner.lock().unwrap();
        let hits: Vec<_> = inner.log.iter().filter(|(l, _)| l.contains(part)).collect();
        (hits.len(), hits.iter().filter(|(_, a)| *a).count())
    }

    pub fn tokens_issued(&self) -> usize {
        self.inner.lock().unwrap().tokens_issued
    }
}

fn error(code: u16, status: &str, message: &str) -> Response {
    let mut r = (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json; charset=UTF-8")],
        json!({"error": {"code": code, "message": message, "status": status}}).to_string(),
    )
        .into_response();
    if code == 429 {
        r.headers_mut().insert("retry-after", "7".parse().unwrap());
    }
    r
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

fn fault_answer(fault: Fault) -> Option<Response> {
    match fault {
        Fault::Status(403) => Some(error(
            403,
            "PERMISSION_DENIED",
            "Permission 'secretmanager.versions.access' denied for resource (or it may not exist).",
        )),
        Fault::Status(404) => Some(error(404, "NOT_FOUND", "Secret not found or has no versions.")),
        Fault::Status(429) => Some(error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute per project'.",
        )),
        Fault::Status(code) => Some(error(code, "UNAVAILABLE", "The service is unavailable.")),
        Fault::BadCrc => None,
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if path == "/token" && method == Method::POST {
        // The grant arrives as a form or as JSON (Google's endpoint takes both).
        let sent = String::from_utf8_lossy(&body);
        if !sent.contains("refresh_token") || !sent.contains("fake-refresh-token") {
            return (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_grant\"}").into_response();
        }
        inner.lock().unwrap().tokens_issued += 1;
        return ok(json!({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}));
    }
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    let mut inner = inner.lock().unwrap();
    inner.log.push((format!("{method} {path}"), authorized));
    if !authorized {
        return error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    let Some(rest) = path.strip_prefix("/v1/projects/") else {
        return error(404, "NOT_FOUND", "Unknown path.");
    };
    let query: BTreeMap<String, String> =
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    route(&mut inner, &method, rest, &query, &body)
}

/// `rest` is the path after `/v1/projects/`.
fn route(
    inner: &mut Inner,
    method: &Method,
    rest: &str,
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> Response {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (project, tail) = rest.split_once('/').unwrap_or((rest, ""));
    // POST projects/P/secrets?secretId=N: create.
    if tail == "secrets" && method == Method::POST {
        let id = query.get("secretId").cloned().unwrap_or_default();
        let key = format!("{project}/{id}");
        if inner.secrets.contains_key(&key) {
            return error(409, "ALREADY_EXISTS", "Secret already exists.");
        }
        let doc: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if doc["replication"]["automatic"].is_null() && doc["replication"]["userManaged"].is_null()
        {
            return error(400, "INVALID_ARGUMENT", "Replication policy is required.");
        }
        let labels = doc["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        inner.secrets.insert(
            key,
            FakeSecret {
                labels,
                versions: Vec::new(),
            },
        );
        return ok(
            json!({"name": format!("projects/{PROJECT_NUMBER}/secrets/{id}"), "replication": {"automatic": {}}, "labels": doc["labels"]}),
        );
    }
    let Some(after) = tail.strip_prefix("secrets/") else {
        return error(404, "NOT_FOUND", "Unknown path.");
    };
    let (id, op) = match after.split_once(':') {
        Some((id, op)) => (id, Some(op)),
        None => (after, None),
    };
    let (id, version) = match id.split_once("/versions/") {
        Some((id, v)) => (id, Some(v)),
        None => (id, None),
    };
    let key = format!("{project}/{id}");
    if let Some(fault) = inner.faults.get(id).copied() {
        if let Some(answer) = fault_answer(fault) {
            return answer;
        }
    }
    let name = format!("projects/{PROJECT_NUMBER}/secrets/{id}");
    match (method.clone(), version, op) {
        (Method::GET, Some(v), Some("access")) => {
            let Some(s) = inner.secrets.get(&key).filter(|s| !s.versions.is_empty()) else {
                return error(
                    404,
                    "NOT_FOUND",
                    &format!("Secret [{name}] not found or has no versions."),
                );
            };
            let n = if v == "latest" {
                s.versions.len()
            } else {
                v.parse().unwrap_or(0)
            };
            let Some(data) = n.checked_sub(1).and_then(|i| s.versions.get(i)) else {
                return error(
                    404,
                    "NOT_FOUND",
                    &format!("Secret Version [{name}/versions/{v}] not found."),
                );
            };
            let mut crc = i64::from(crc32c(data));
            if inner.faults.get(id) == Some(&Fault::BadCrc) {
                crc ^= 1;
            }
            ok(json!({
                "name": format!("{name}/versions/{n}"),
                "payload": {"data": b64.encode(data), "dataCrc32c": crc.to_string()},
            }))
        }
        (Method::POST, None, Some("addVersion")) => {
            let Some(s) = inner.secrets.get_mut(&key) else {
                return error(404, "NOT_FOUND", &format!("Secret [{name}] not found."));
            };
            let doc: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let data = b64
                .decode(doc["payload"]["data"].as_str().unwrap_or_default())
                .unwrap_or_default();
            let sent_crc = &doc["payload"]["dataCrc32c"];
            let sent_crc = sent_crc
                .as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .or_else(|| sent_crc.as_i64());
            if sent_crc.is_some_and(|c| c != i64::from(crc32c(&data))) {
                return error(400, "INVALID_ARGUMENT", "Checksum mismatch.");
            }
            s.versions.push(data);
            let n = s.versions.len();
            ok(json!({"name": format!("{name}/versions/{n}"), "state": "ENABLED"}))
        }
        (Method::GET, None, None) => match inner.secrets.get(&key) {
            Some(s) => ok(json!({
                "name": name,
                "replication": {"automatic": {}},
                "labels": s.labels,
                "etag": "\"1\"",
            })),
            None => error(404, "NOT_FOUND", &format!("Secret [{name}] not found.")),
        },
        (Method::DELETE, None, None) => match inner.secrets.remove(&key) {
            Some(_) => ok(json!({})),
            None => error(404, "NOT_FOUND", &format!("Secret [{name}] not found.")),
        },
        _ => error(404, "NOT_FOUND", "Unknown method."),
    }
}

/// CRC32C (Castagnoli), as Secret Manager computes `dataCrc32c`.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
