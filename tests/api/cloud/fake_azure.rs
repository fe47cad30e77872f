//! A protocol fake of Azure Key Vault's secrets REST API and of the App Service managed
//! identity token endpoint, for the `azure-kv:` backend: no Key Vault emulator installs
//! here. It serves https with a certificate for 127.0.0.1 from a CA made with the openssl
//! CLI (`azure_core` sends bearer tokens over https only), which the daemon trusts through
//! `azure_kv_ca_file`.
//!
//! It answers as these pages document:
//! - https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/get-secret/get-secret
//!   (`GET {vault}/secrets/{name}/{version}?api-version=…`, an empty version for the latest;
//!   `SecretBundle`: `value`, `id` = `{vault}/secrets/{name}/{version}`, `attributes`, `tags`)
//! - https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/set-secret/set-secret
//!   (`PUT {vault}/secrets/{name}`, body `value` and `tags`: a new version)
//! - https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/delete-secret/delete-secret
//!   (`DELETE {vault}/secrets/{name}` → `DeletedSecretBundle` with `recoveryId`,
//!   `scheduledPurgeDate`: soft delete)
//! - https://learn.microsoft.com/en-us/azure/key-vault/general/authentication-requests-and-responses
//!   (a request without a token gets 401 and `WWW-Authenticate: Bearer
//!   authorization="https://login.microsoftonline.com/{tenant}", resource="https://vault.azure.net"`;
//!   error bodies `{"error": {"code", "message"}}`: 403 Forbidden, 404 SecretNotFound)
//! - https://learn.microsoft.com/en-us/azure/key-vault/general/overview-throttling
//!   (429 `Throttled` with `Retry-After`)
//! - https://learn.microsoft.com/en-us/azure/app-service/overview-managed-identity#rest-endpoint-reference
//!   (`GET IDENTITY_ENDPOINT?api-version=2019-08-01&resource=…` with `X-IDENTITY-HEADER`;
//!   `access_token`, `expires_on` as a string of epoch seconds, `resource`, `token_type`)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The token the fake issues and expects.
pub const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.fake-azure-token.";
/// What the daemon must send as `X-IDENTITY-HEADER` (its `IDENTITY_HEADER`).
pub const IDENTITY_HEADER: &str = "fake-identity-header-5d1c";

/// One stored secret: its versions (id, value, tags), the latest last.
#[derive(Debug, Clone, Default)]
pub struct FakeSecret {
    pub versions: Vec<(String, String, BTreeMap<String, String>)>,
}

#[derive(Default)]
struct Inner {
    /// By lower-case name (Key Vault names are case-insensitive).
    secrets: BTreeMap<String, FakeSecret>,
    deleted: Vec<String>,
    /// An HTTP status answered for a secret instead of its data.
    faults: BTreeMap<String, u16>,
    /// (`METHOD path`, whether it carried the token), in order.
    log: Vec<(String, bool)>,
    challenges: usize,
    tokens_issued: usize,
    next_version: u32,
}

pub struct FakeAzure {
    pub url: String,
    /// The CA that signed the fake's certificate (PEM).
    pub ca_file: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

impl FakeAzure {
    pub async fn start() -> FakeAzure {
        let dir = cert_dir();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let acceptor = acceptor(&dir);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FakeAzure {
            url,
            ca_file: dir.join("ca.crt"),
            inner,
        }
    }

    /// The managed identity endpoint (`IDENTITY_ENDPOINT`).
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.url)
    }

    /// Sets `name` to `value` (a new version) with `tags`.
    pub fn put(&self, name: &str, value: &str, tags: &[(&str, &str)]) {
        let mut inner = self.inner.lock().unwrap();
        let tags = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        add_version(&mut inner, name, value.to_string(), tags);
    }

    pub fn secret(&self, name: &str) -> Option<FakeSecret> {
        let inner = self.inner.lock().unwrap();
        inner.secrets.get(&name.to_ascii_lowercase()).cloned()
    }

    pub fn deleted(&self) -> Vec<String> {
        self.inner.lock().unwrap().deleted.clone()
    }

    pub fn fail(&self, name: &str, status: Option<u16>) {
        let mut inner = self.inner.lock().unwrap();
        match status {
            Some(s) => inner.faults.insert(name.to_ascii_lowercase(), s),
            None => inner.faults.remove(&name.to_ascii_lowercase()),
        };
    }

    /// Requests for paths containing `part`: (count, how many carried the token).
    pub fn requests(&self, part: &str) -> (usize, usize) {
        let inner = self.inner.lock().unwrap();
        let hits: Vec<_> = inner.log.iter().filter(|(l, _)| l.contains(part)).collect();
        (hits.len(), hits.iter().filter(|(_, a)| *a).count())
    }

    /// (401 challenges sent, tokens issued).
    pub fn auth_counts(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap();
        (inner.challenges, inner.tokens_issued)
    }
}

fn add_version(
    inner: &mut Inner,
    name: &str,
    value: String,
    tags: BTreeMap<String, String>,
) -> String {
    inner.next_version += 1;
    let version = format!("{:032x}", 0xfeed_0000_u64 + u64::from(inner.next_version));
    inner
        .secrets
        .entry(name.to_ascii_lowercase())
        .or_default()
        .versions
        .push((version.clone(), value, tags));
    version
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json; charset=utf-8")],
        json!({"error": {"code": code, "message": message}}).to_string(),
    )
        .into_response();
    if status == 429 {
        r.headers_mut().insert("retry-after", "9".parse().unwrap());
    }
    r
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn bundle(
    host: &str,
    name: &str,
    version: &str,
    value: &str,
    tags: &BTreeMap<String, String>,
) -> Value {
    json!({
        "value": value,
        "id": format!("https://{host}/secrets/{name}/{version}"),
        "attributes": {"enabled": true, "created": 1_700_000_000, "updated": 1_700_000_000,
                       "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
        "tags": tags,
    })
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let mut inner = inner.lock().unwrap();
    if path == "/msi/token" {
        let query = uri.query().unwrap_or_default();
        let sent = headers
            .get("x-identity-header")
            .and_then(|v| v.to_str().ok());
        if sent != Some(IDENTITY_HEADER) || !query.contains("api-version=2019-08-01") {
            return (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}").into_response();
        }
        inner.tokens_issued += 1;
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        return ok(
            json!({"access_token": TOKEN, "expires_on": expires.to_string(),
                         "resource": "https://vault.azure.net", "token_type": "Bearer"}),
        );
    }
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    inner.log.push((format!("{method} {path}"), authorized));
    if !authorized {
        inner.challenges += 1;
        let mut r = error(
            401,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
        );
        r.headers_mut().insert(
            "www-authenticate",
            "Bearer authorization=\"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47\", resource=\"https://vault.azure.net\""
                .parse()
                .unwrap(),
        );
        return r;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (name, version) = match segments.as_slice() {
        ["secrets", name] => (*name, None),
        ["secrets", name, version] => (*name, Some(*version)),
        _ => return error(400, "BadParameter", "Unknown path."),
    };
    let key = name.to_ascii_lowercase();
    if let Some(status) = inner.faults.get(&key).copied() {
        return match status {
            403 => error(403, "Forbidden", "Caller is not authorized to perform action on resource. Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'"),
            404 => error(404, "SecretNotFound", &format!("A secret with (name/id) {name} was not found in this key vault.")),
            429 => error(429, "Throttled", "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"),
            s => error(s, "ServiceUnavailable", "The service is unavailable."),
        };
    }
    let not_found = || {
        error(404, "SecretNotFound", &format!("A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command."))
    };
    match method {
        Method::GET => {
            let Some(s) = inner.secrets.get(&key) else {
                return not_found();
            };
            let found = match version.filter(|v| !v.is_empty()) {
                Some(v) => s.versions.iter().find(|(id, _, _)| id == v),
                None => s.versions.last(),
            };
            match found {
                Some((id, value, tags)) => ok(bundle(&host, name, id, value, tags)),
                None => not_found(),
            }
        }
        Method::PUT => {
            let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let Some(value) = doc["value"].as_str() else {
                return error(400, "BadParameter", "Property value is required.");
            };
            let tags: BTreeMap<String, String> = doc["tags"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let version = add_version(&mut inner, name, value.to_string(), tags.clone());
            ok(bundle(&host, name, &version, value, &tags))
        }
        Method::DELETE => match inner.secrets.remove(&key) {
            Some(s) => {
                inner.deleted.push(key);
                let (id, _, tags) = s.versions.last().cloned().unwrap_or_default();
                ok(json!({
                    "recoveryId": format!("https://{host}/deletedsecrets/{name}"),
                    "deletedDate": 1_700_000_100, "scheduledPurgeDate": 1_707_776_100,
                    "id": format!("https://{host}/secrets/{name}/{id}"),
                    "attributes": {"enabled": true, "recoveryLevel": "Recoverable+Purgeable"},
                    "tags": tags,
                }))
            }
            None => not_found(),
        },
        _ => error(405, "BadParameter", "Method not allowed."),
    }
}

/// A fresh directory with `ca.crt` and a server certificate for 127.0.0.1 it signed.
fn cert_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "drover-fake-azure-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[req]\nprompt = no\ndistinguished_name = dn\nx509_extensions = v3\n[dn]\nCN = fake key vault CA\n\
         [v3]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-config", "ca.cnf"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(&dir, &ca);
    let mut csr = vec!["req", "-new", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&dir, &csr);
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "77",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
    dir
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the openssl CLI (apt-get install -y openssl): {e}"));
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.crt"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
