//! TLS for PostgreSQL connections: libpq's `sslmode` on top of tokio-postgres and rustls.
//!
//! This module owns turning a libpq-style connection string (URL or `key=value` form)
//! into a [`PgTarget`] (a `tokio_postgres::Config` plus the TLS intent) and connecting
//! with the matching TLS connector, either directly ([`PgTarget::connect`], used for
//! tenant databases) or through a deadpool-postgres manager ([`PgTarget::manager`], used
//! for the control DB pool).
//!
//! **The sslmode table.** tokio-postgres only knows disable/prefer/require and its parser
//! rejects `verify-ca` and `verify-full`, so `sslmode` and `sslrootcert` are taken out of
//! the string here (the rest goes to `tokio_postgres::Config::from_str` untouched) and
//! mapped as follows:
//!
//! | sslmode              | tokio-postgres  | certificate checks                                 |
//! |----------------------|-----------------|----------------------------------------------------|
//! | `disable`            | Disable, NoTls  | none: plain text                                   |
//! | `allow`              | Prefer          | as `prefer` (tokio-postgres cannot try plain first)|
//! | `prefer` (default)   | Prefer          | none, or the chain if `sslrootcert` is given       |
//! | `require`            | Require         | none, or the chain if `sslrootcert` is given       |
//! | `verify-ca`          | Require         | the chain against the CA bundle, not the host name |
//! | `verify-full`        | Require         | the chain and the host name (DNS or IP SAN)        |
//!
//! The CA bundle is `sslrootcert` if given, else the configured default CA file passed to
//! [`PgTarget::connect`]/[`PgTarget::manager`], else the Mozilla roots compiled in from
//! `webpki-roots`. `sslrootcert=system` means the Mozilla roots and, as in libpq 16+,
//! implies `verify-full` (a weaker explicit sslmode is an error). The configured default
//! CA never turns verification on by itself: it only chooses the roots.
//!
//! **Unix sockets.** A host starting with `/` (e.g. Cloud SQL's
//! `/cloudsql/project:region:instance`) is a socket directory; as in libpq, TLS does not
//! apply there, so when every host is a socket the connection is made without TLS,
//! whatever the sslmode. tokio-postgres uses one TLS setting for all hosts, so in a mixed
//! host list with `require` or stronger the socket hosts fail and the next host is tried.
//!
//! **Why custom verifiers.** rustls always checks the chain and the host name. libpq's
//! `require` (encrypt, trust any certificate) and `verify-ca` (trust the CA but not the
//! name, common behind proxies or when servers are reached by IP) have no rustls
//! equivalent, so [`RelaxedVerifier`] implements `ServerCertVerifier`: without roots it
//! accepts any certificate; with roots it runs webpki's chain check and skips only the
//! name check. Either way the handshake signatures are verified, so the server must hold
//! the key of the certificate it presents. `verify-full` uses rustls' stock
//! `WebPkiServerVerifier`.
//!
//! **Crypto provider.** Always `ring`, passed to `ClientConfig::builder_with_provider`, so
//! nothing depends on a process-wide default provider (and aws-lc-rs is never built).
//! ALPN `postgresql` is offered, which PostgreSQL 17's `sslnegotiation=direct` requires and
//! older servers ignore.
//!
//! **Secrets.** A connection string may hold a password: no error built here contains
//! the input (only option names from fixed lists and positions), and `PgTarget`'s
//! `Debug` relies on `tokio_postgres::Config`'s, which prints the password as `_`.
//!
//! **Limits.** No client certificates (`sslcert`/`sslkey`), CRLs or `~/.postgresql`
//! defaults; those libpq options are rejected by name. A fresh rustls `ClientConfig` (and
//! CA file read) is made per [`PgTarget::connect`] call, so there is no TLS session
//! resumption between direct connections.
//!
//! **The listener's side.** [`HttpsFiles`], the certificate chain and key the HTTP listener
//! serves when HTTPS is on, is defined here so the configuration can name it without
//! depending on the HTTP layer; `http::https` turns it into an acceptor.

use std::error::Error as _;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

/// `sslrootcert` value meaning "the platform roots" (here: the Mozilla roots).
const SYSTEM_ROOTS: &str = "system";

/// libpq connection options tokio-postgres does not support. Naming them in an error is
/// safe (they come from this list, not from the input) and tells the user what to drop.
const LIBPQ_ONLY_OPTIONS: [&str; 24] = [
    "client_encoding",
    "fallback_application_name",
    "gssdelegation",
    "gssencmode",
    "gsslib",
    "keepalives_count",
    "krbsrvname",
    "passfile",
    "replication",
    "require_auth",
    "requirepeer",
    "service",
    "ssl_max_protocol_version",
    "ssl_min_protocol_version",
    "sslcert",
    "sslcertmode",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslkey",
    "sslkeylogfile",
    "sslpassword",
    "sslsni",
    "scram_client_key",
];

/// libpq's `sslmode`. The default (when a string does not say) is `Prefer`, as in libpq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// Treated as `Prefer`: tokio-postgres cannot try plain text first.
    Allow,
    /// TLS if the server offers it, else plain text; no certificate checks.
    Prefer,
    /// TLS or fail; no certificate checks.
    Require,
    /// TLS, and the chain must lead to the CA bundle; the host name is not checked.
    VerifyCa,
    /// TLS, the chain must lead to the CA bundle and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling, e.g. `"verify-full"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The nearest mode tokio-postgres knows.
    fn pg_mode(self) -> PgSslMode {
        match self {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = TlsError;

    /// Exact libpq spellings only. The rejected value is not echoed.
    fn from_str(s: &str) -> Result<SslMode, TlsError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(TlsError::UnknownSslMode),
        })
    }
}

/// Why a connection string could not be used or a connection could not be made.
/// No variant ever contains the connection string.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The connection string is malformed or uses an unsupported option.
    #[error("invalid PostgreSQL connection string: {why}")]
    BadConnectionString { why: String },
    /// `sslmode` is not one of libpq's values.
    #[error(
        "unknown sslmode; expected one of: disable, allow, prefer, require, verify-ca, \
         verify-full"
    )]
    UnknownSslMode,
    /// The CA bundle could not be read or holds no usable certificate.
    #[error("cannot use CA bundle {}: {why}", path.display())]
    BadCa { path: PathBuf, why: String },
    /// rustls refused the TLS configuration (not expected with the ring provider).
    #[error("cannot set up TLS: {0}")]
    Setup(#[source] rustls::Error),
    /// Connecting failed: network, TLS handshake, authentication or the server refused.
    #[error("cannot connect to PostgreSQL: {}", describe(.0))]
    Connect(#[from] tokio_postgres::Error),
}

impl TlsError {
    /// Whether trying again later may succeed: the server was unreachable, timed out,
    /// dropped the connection, is starting up or shutting down, or is out of connection
    /// slots. Bad strings, CA files, certificates and credentials are not retryable.
    pub fn is_retryable(&self) -> bool {
        let TlsError::Connect(e) = self else {
            return false;
        };
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            return code.code().starts_with("08")
                || [
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                ]
                .contains(code);
        }
        if e.is_closed() {
            return true;
        }
        // I/O failures are retryable, unless the I/O error is rustls rejecting the
        // handshake (a certificate or protocol problem that retrying will not fix).
        let mut source = e.source();
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                return !io
                    .get_ref()
                    .is_some_and(|inner| inner.is::<rustls::Error>());
            }
            source = err.source();
        }
        false
    }
}

fn bad(why: impl Into<String>) -> TlsError {
    TlsError::BadConnectionString { why: why.into() }
}

/// A parsed connection string: the tokio-postgres config plus the TLS intent.
///
/// `sslmode` is authoritative: the config's own `ssl_mode` is overwritten when
/// connecting. `Debug` shows the password as `_` (tokio-postgres redacts it).
#[derive(Clone, Debug)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub sslmode: SslMode,
    /// `sslrootcert`: a PEM CA bundle, or `system` for the Mozilla roots.
    pub root_cert: Option<PathBuf>,
}

impl PgTarget {
    /// Parses URL (`postgres://user:pw@host:5432/db?sslmode=verify-full&sslrootcert=/ca.pem`)
    /// or key=value (`host=h dbname=db sslmode=verify-ca`) form. Errors never contain the
    /// input (it may hold a password).
    pub fn parse(conn: &str) -> Result<PgTarget, TlsError> {
        if conn.trim().is_empty() {
            return Err(bad("it is empty"));
        }
        let extracted = if is_url(conn) {
            extract_from_url(conn)?
        } else {
            extract_from_key_values(conn)?
        };
        let config = tokio_postgres::Config::from_str(&extracted.rest)
            .map_err(|e| bad(describe_parse_error(&e)))?;
        let system = extracted.root_cert.as_deref() == Some(Path::new(SYSTEM_ROOTS));
        let sslmode = match extracted.sslmode {
            None if system => SslMode::VerifyFull,
            Some(mode) if system && mode != SslMode::VerifyFull => {
                return Err(bad("sslrootcert=system requires sslmode=verify-full"));
            }
            mode => mode.unwrap_or(SslMode::Prefer),
        };
        Ok(PgTarget::from_config(config, sslmode, extracted.root_cert))
    }

    /// From an existing config (e.g. built from a tenant row) plus options.
    pub fn from_config(
        mut config: tokio_postgres::Config,
        sslmode: SslMode,
        root_cert: Option<PathBuf>,
    ) -> PgTarget {
        config.ssl_mode(sslmode.pg_mode());
        PgTarget {
            config,
            sslmode,
            root_cert,
        }
    }

    /// Connects (spawning the connection future on tokio), returning the client.
    /// `default_ca` is the configured CA bundle, used when the string has no
    /// `sslrootcert`.
    pub async fn connect(
        &self,
        default_ca: Option<&Path>,
    ) -> Result<tokio_postgres::Client, TlsError> {
        let (config, tls) = self.prepare(default_ca)?;
        let client = match tls {
            None => {
                let (client, conn) = config.connect(NoTls).await?;
                tokio::spawn(drive(conn));
                client
            }
            Some(tls) => {
                let (client, conn) = config.connect(tls).await?;
                tokio::spawn(drive(conn));
                client
            }
        };
        Ok(client)
    }

    /// A deadpool-postgres manager using the right TLS for this target. Fails only on
    /// CA bundle problems; connection errors surface when the pool connects.
    pub fn manager(
        &self,
        default_ca: Option<&Path>,
        mc: deadpool_postgres::ManagerConfig,
    ) -> Result<deadpool_postgres::Manager, TlsError> {
        let (config, tls) = self.prepare(default_ca)?;
        Ok(match tls {
            None => deadpool_postgres::Manager::from_config(config, NoTls, mc),
            Some(tls) => deadpool_postgres::Manager::from_config(config, tls, mc),
        })
    }

    /// The config to connect with and the TLS connector, `None` meaning no TLS; for
    /// callers that must drive the connection themselves (LISTEN/NOTIFY).
    pub fn prepare(
        &self,
        default_ca: Option<&Path>,
    ) -> Result<(tokio_postgres::Config, Option<MakeRustlsConnect>), TlsError> {
        let mut config = self.config.clone();
        let mode = if self.only_unix_sockets() {
            PgSslMode::Disable
        } else {
            self.sslmode.pg_mode()
        };
        config.ssl_mode(mode);
        if mode == PgSslMode::Disable {
            return Ok((config, None));
        }
        let tls = MakeRustlsConnect::new(self.client_config(default_ca)?);
        Ok((config, Some(tls)))
    }

    /// Every host is a Unix socket directory (and no `hostaddr` forces TCP).
    fn only_unix_sockets(&self) -> bool {
        let hosts = self.config.get_hosts();
        !hosts.is_empty()
            && self.config.get_hostaddrs().is_empty()
            && hosts.iter().all(|h| matches!(h, Host::Unix(_)))
    }

    fn client_config(&self, default_ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algs = provider.signature_verification_algorithms;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?;
        let builder = match self.sslmode {
            SslMode::VerifyFull => builder.with_root_certificates(self.roots(default_ca)?),
            SslMode::VerifyCa => {
                let roots = Some(Arc::new(self.roots(default_ca)?));
                let verifier = Arc::new(RelaxedVerifier { roots, algs });
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
            }
            SslMode::Disable | SslMode::Allow | SslMode::Prefer | SslMode::Require => {
                // As libpq: an explicit sslrootcert turns on the chain check.
                let roots = match &self.root_cert {
                    Some(_) => Some(Arc::new(self.roots(default_ca)?)),
                    None => None,
                };
                let verifier = Arc::new(RelaxedVerifier { roots, algs });
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
            }
        };
        let mut config = builder.with_no_client_auth();
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(config)
    }

    /// `sslrootcert`, else the configured default CA, else the Mozilla roots.
    fn roots(&self, default_ca: Option<&Path>) -> Result<RootCertStore, TlsError> {
        match self.root_cert.as_deref().or(default_ca) {
            Some(path) if path != Path::new(SYSTEM_ROOTS) => load_ca_bundle(path),
            _ => Ok(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
        }
    }
}

async fn drive<F>(conn: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = conn.await {
        tracing::debug!(error = %describe(&e), "PostgreSQL connection ended");
    }
}

/// Every `CERTIFICATE` block of a PEM file. Certificates webpki cannot use as trust
/// anchors are skipped (system bundles sometimes hold odd ones), but at least one must
/// remain.
fn load_ca_bundle(path: &Path) -> Result<RootCertStore, TlsError> {
    let fail = |why: String| TlsError::BadCa {
        path: path.to_path_buf(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut certs = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        certs.push(cert.map_err(|e| fail(format!("PEM block {}: {e}", i + 1)))?);
    }
    let mut roots = RootCertStore::empty();
    let (added, skipped) = roots.add_parsable_certificates(certs);
    if added == 0 {
        let why = if skipped == 0 {
            "no PEM certificate (-----BEGIN CERTIFICATE-----) found".to_string()
        } else {
            format!("none of its {skipped} certificate(s) can be used as a trust anchor")
        };
        return Err(fail(why));
    }
    if skipped > 0 {
        tracing::warn!(path = %path.display(), skipped, "CA bundle: skipped unusable certificates");
    }
    Ok(roots)
}

/// The verifier for everything short of `verify-full`: with `roots`, the chain must lead
/// to one of them but the host name is not checked (`verify-ca`); without, any
/// certificate is accepted (`require`/`prefer`). Handshake signatures are always checked.
#[derive(Debug)]
struct RelaxedVerifier {
    roots: Option<Arc<RootCertStore>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RelaxedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algs.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// What [`PgTarget::parse`] takes out of the string before tokio-postgres sees it.
struct Extracted {
    rest: String,
    sslmode: Option<SslMode>,
    root_cert: Option<PathBuf>,
}

fn is_url(conn: &str) -> bool {
    conn.starts_with("postgres://") || conn.starts_with("postgresql://")
}

/// Removes `sslmode`/`sslrootcert` from a URL's query, leaving every other byte as it was.
fn extract_from_url(conn: &str) -> Result<Extracted, TlsError> {
    let mut out = Extracted {
        rest: conn.to_string(),
        sslmode: None,
        root_cert: None,
    };
    // Find the query as tokio-postgres does: the credentials run to the first `@` (so a
    // password may hold an unencoded `?`), and the query starts at the next `?`.
    let body = conn.find("://").map_or(0, |i| i + 3);
    let after_creds = body + conn[body..].find('@').map_or(0, |i| i + 1);
    let Some(q) = conn[after_creds..].find('?').map(|i| after_creds + i) else {
        return Ok(out);
    };
    let (head, query) = (&conn[..q], &conn[q + 1..]);
    let mut kept = Vec::new();
    for (i, param) in query.split('&').enumerate() {
        if param.is_empty() {
            continue;
        }
        let Some((key, value)) = param.split_once('=') else {
            return Err(bad(format!("URL parameter #{} has no `=`", i + 1)));
        };
        match percent_decode(key).as_slice() {
            b"sslmode" => {
                let value = String::from_utf8(percent_decode(value)).ok();
                out.sslmode = Some(value.as_deref().unwrap_or("").parse()?);
            }
            b"sslrootcert" => {
                let path = PathBuf::from(OsStr::from_bytes(&percent_decode(value)));
                out.root_cert = Some(path);
            }
            _ => kept.push(param),
        }
    }
    out.rest = if kept.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    Ok(out)
}

/// Removes `sslmode`/`sslrootcert` from key=value form and re-quotes the other pairs.
fn extract_from_key_values(conn: &str) -> Result<Extracted, TlsError> {
    let mut out = Extracted {
        rest: String::new(),
        sslmode: None,
        root_cert: None,
    };
    let mut kept = Vec::new();
    for (key, value) in key_values(conn)? {
        match key {
            "sslmode" => out.sslmode = Some(value.parse()?),
            "sslrootcert" => out.root_cert = Some(PathBuf::from(value)),
            _ => kept.push(format!("{key}={}", quote_value(&value))),
        }
    }
    out.rest = kept.join(" ");
    Ok(out)
}

/// libpq's key=value syntax, as tokio-postgres reads it: `key = value` pairs separated by
/// whitespace; values are bare words or single-quoted, with `\` escaping any character.
fn key_values(s: &str) -> Result<Vec<(&str, String)>, TlsError> {
    let mut pairs = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let n = pairs.len() + 1;
        let key_end = rest
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        if key.is_empty() {
            return Err(bad(format!("option #{n} has no name")));
        }
        rest = rest[key_end..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| bad(format!("option #{n} is not followed by `=`")))?
            .trim_start();
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let quoted = rest.starts_with('\'');
        if quoted {
            chars.next();
        }
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '\'' if quoted => {
                    end = Some(i + 1);
                    break;
                }
                c if !quoted && c.is_whitespace() => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = match end {
            Some(end) => end,
            None if quoted => return Err(bad(format!("option #{n} has an unterminated quote"))),
            None => rest.len(),
        };
        if !quoted && end == 0 {
            return Err(bad(format!("option #{n} has no value")));
        }
        pairs.push((key, value));
        rest = rest[end..].trim_start();
    }
    Ok(pairs)
}

fn quote_value(value: &str) -> String {
    let escaped = value.replace('\\', r"\\").replace('\'', r"\'");
    format!("'{escaped}'")
}

/// `%XX` decoding; malformed escapes are kept literally, as tokio-postgres does.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) if bytes[i] == b'%' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// tokio-postgres' parse error, keeping only text that cannot come from the input:
/// option names it reports are echoed only when they are known libpq options.
fn describe_parse_error(e: &tokio_postgres::Error) -> String {
    let cause = e.source().map(|s| s.to_string()).unwrap_or_default();
    if let Some(name) = cause
        .strip_prefix("unknown option `")
        .and_then(|s| s.strip_suffix('`'))
    {
        return match LIBPQ_ONLY_OPTIONS.iter().find(|o| **o == name) {
            Some(known) => format!("libpq option `{known}` is not supported"),
            None => "unknown option (its name is not shown: it may be part of a secret)".into(),
        };
    }
    // tokio-postgres fills these names in from its own string constants.
    if cause.starts_with("invalid value for option `") {
        return cause;
    }
    "malformed host, port, user or database name".into()
}

/// The HTTP listener's certificate chain and private key (PEM files): the
/// `tls_cert_file` / `tls_key_file` settings, both or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// A PostgreSQL error as one line with SQLSTATE, message, detail and hint; tokio-postgres'
/// own Display says only "db error".
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" (detail: {d})"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!(" (hint: {h})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-Pa55";

    fn hosts(t: &PgTarget) -> Vec<String> {
        t.config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(s) => s.clone(),
                Host::Unix(p) => p.display().to_string(),
            })
            .collect()
    }

    #[test]
    fn url_form_takes_out_sslmode_and_sslrootcert_and_keeps_the_rest() {
        let t = PgTarget::parse(
            "postgres://app:s3cr3t-Pa55@db.example.com:6432/t_1?sslmode=verify-full\
             &application_name=drover&sslrootcert=%2Fetc%2Fssl%2Fca%20x.pem&connect_timeout=7",
        )
        .unwrap();
        assert_eq!(t.sslmode, SslMode::VerifyFull);
        assert_eq!(t.root_cert, Some(PathBuf::from("/etc/ssl/ca x.pem")));
        assert_eq!(hosts(&t), ["db.example.com"]);
        assert_eq!(t.config.get_ports(), [6432]);
        assert_eq!(t.config.get_user(), Some("app"));
        assert_eq!(t.config.get_password(), Some(SECRET.as_bytes()));
        assert_eq!(t.config.get_dbname(), Some("t_1"));
        assert_eq!(t.config.get_application_name(), Some("drover"));
        let timeout = t.config.get_connect_timeout().copied();
        assert_eq!(timeout, Some(std::time::Duration::from_secs(7)));
        assert_eq!(t.config.get_ssl_mode(), PgSslMode::Require);
    }

    #[test]
    fn key_value_form_takes_out_sslmode_and_keeps_quoted_values() {
        let t = PgTarget::parse(
            r"host=db.internal port = 5433 user=app password='it\'s a \\ secret' dbname=t1 sslmode=verify-ca sslrootcert='/ca dir/root.pem'",
        )
        .unwrap();
        assert_eq!(t.sslmode, SslMode::VerifyCa);
        assert_eq!(t.root_cert, Some(PathBuf::from("/ca dir/root.pem")));
        assert_eq!(hosts(&t), ["db.internal"]);
        assert_eq!(t.config.get_ports(), [5433]);
        assert_eq!(t.config.get_password(), Some(&br"it's a \ secret"[..]));
        assert_eq!(t.config.get_dbname(), Some("t1"));
    }

    #[test]
    fn sslmode_defaults_to_prefer_and_maps_onto_tokio_postgres() {
        let t = PgTarget::parse("postgresql://u@h/db").unwrap();
        assert_eq!((t.sslmode, t.root_cert.clone()), (SslMode::Prefer, None));
        let cases = [
            ("disable", SslMode::Disable, PgSslMode::Disable),
            ("allow", SslMode::Allow, PgSslMode::Prefer),
            ("prefer", SslMode::Prefer, PgSslMode::Prefer),
            ("require", SslMode::Require, PgSslMode::Require),
            ("verify-ca", SslMode::VerifyCa, PgSslMode::Require),
            ("verify-full", SslMode::VerifyFull, PgSslMode::Require),
        ];
        for (text, mode, pg) in cases {
            assert_eq!(text.parse::<SslMode>().unwrap(), mode);
            assert_eq!(mode.to_string(), text);
            let t = PgTarget::parse(&format!("host=h sslmode={text}")).unwrap();
            assert_eq!((t.sslmode, t.config.get_ssl_mode()), (mode, pg), "{text}");
        }
    }

    #[test]
    fn unknown_sslmode_is_rejected_with_the_valid_values() {
        for conn in [
            "postgres://u@h/db?sslmode=verify_full",
            "host=h sslmode=VERIFY-FULL",
        ] {
            let err = PgTarget::parse(conn).unwrap_err();
            assert!(matches!(err, TlsError::UnknownSslMode), "{err}");
            assert!(err.to_string().contains("verify-ca, verify-full"), "{err}");
        }
    }

    #[test]
    fn sslrootcert_system_implies_verify_full_and_refuses_weaker_modes() {
        let t = PgTarget::parse("host=h sslrootcert=system").unwrap();
        assert_eq!(t.sslmode, SslMode::VerifyFull);
        let err = PgTarget::parse("host=h sslrootcert=system sslmode=require").unwrap_err();
        assert!(err.to_string().contains("verify-full"), "{err}");
    }

    #[test]
    fn unix_socket_hosts_parse_in_both_forms() {
        let kv = PgTarget::parse("host=/cloudsql/p:r:i user=u dbname=d sslmode=require").unwrap();
        let url = PgTarget::parse("postgres://u@/d?host=/cloudsql/p:r:i&sslmode=require").unwrap();
        let enc = PgTarget::parse("postgres://u@%2Fcloudsql%2Fp%3Ar%3Ai/d").unwrap();
        for t in [&kv, &url, &enc] {
            assert_eq!(hosts(t), ["/cloudsql/p:r:i"]);
            assert!(t.only_unix_sockets());
            let (config, tls) = t.prepare(None).unwrap();
            assert!(tls.is_none());
            assert_eq!(config.get_ssl_mode(), PgSslMode::Disable);
        }
        let tcp = PgTarget::parse("host=localhost sslmode=require").unwrap();
        assert!(!tcp.only_unix_sockets());
    }

    #[test]
    fn every_mode_builds_a_tls_config_except_disable() {
        for mode in [
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            let t = PgTarget::from_config(tokio_postgres::Config::new(), mode, None);
            assert!(t.prepare(None).unwrap().1.is_some(), "{mode}");
        }
        let t = PgTarget::from_config(tokio_postgres::Config::new(), SslMode::Disable, None);
        assert!(t.prepare(None).unwrap().1.is_none());
    }

    #[test]
    fn bad_ca_bundles_name_the_file_and_the_problem() {
        let dir = std::env::temp_dir().join(format!("drover-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let missing = dir.join("missing.pem");
        for (path, needle) in [(&empty, "no PEM certificate"), (&missing, "No such file")] {
            let t = PgTarget::from_config(
                tokio_postgres::Config::new(),
                SslMode::VerifyFull,
                Some(path.clone()),
            );
            let Err(err) = t.prepare(None) else {
                panic!("{} was accepted", path.display())
            };
            let msg = err.to_string();
            assert!(matches!(err, TlsError::BadCa { .. }), "{msg}");
            assert!(
                msg.contains(&path.display().to_string()) && msg.contains(needle),
                "{msg}"
            );
            assert!(!err.is_retryable());
        }
        // The default CA is used when the string has none; require does not read it.
        let t = PgTarget::from_config(tokio_postgres::Config::new(), SslMode::VerifyCa, None);
        assert!(t.prepare(Some(&missing)).is_err());
        let t = PgTarget::from_config(tokio_postgres::Config::new(), SslMode::Require, None);
        assert!(t.prepare(Some(&missing)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_and_debug_output_never_contain_the_password() {
        let garbage = [
            "postgres://app:s3cr3t-Pa55@host:notaport/db",
            "postgres://app:s3cr3t-Pa55@host/db?s3cr3t-Pa55",
            "postgres://app:s3cr3t-Pa55@host/db?s3cr3t-Pa55=1",
            "postgres://app:s3cr3t-Pa55@host/db?sslmode=s3cr3t-Pa55",
            "postgres://app:s3cr3t-Pa55@[::1/db",
            "host=h password=s3cr3t-Pa55 s3cr3t-Pa55",
            "host=h s3cr3t-Pa55=x",
            "host=h password='s3cr3t-Pa55",
            "host=h password=s3cr3t-Pa55 port=s3cr3t-Pa55",
            "s3cr3t-Pa55",
            "=s3cr3t-Pa55",
        ];
        for conn in garbage {
            let err = PgTarget::parse(conn).expect_err(conn);
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(SECRET), "{conn} -> {shown}");
        }
        // Known libpq options are named, which tells the user what to remove.
        let err = PgTarget::parse("host=h sslcert=/c.pem password=s3cr3t-Pa55").unwrap_err();
        assert!(
            err.to_string().contains("`sslcert` is not supported"),
            "{err}"
        );

        let t = PgTarget::parse("postgres://app:s3cr3t-Pa55@h/db?sslmode=require").unwrap();
        let debug = format!("{t:?}");
        assert!(
            !debug.contains(SECRET) && debug.contains("Require"),
            "{debug}"
        );
    }

    #[test]
    fn key_value_tokenizer_matches_libpq_quoting() {
        let pairs = key_values(r" a=1  b = 'x y' c=\ z d='' ").unwrap();
        let expected = [("a", "1"), ("b", "x y"), ("c", " z"), ("d", "")];
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(pairs, expected);
        assert!(key_values("a=").is_err());
        assert!(key_values("a").is_err());
        assert_eq!(quote_value(r"it's \"), r"'it\'s \\'");
        assert_eq!(percent_decode("%2Fa%zz%4"), b"/a%zz%4");
    }
}
