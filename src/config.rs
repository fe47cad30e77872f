//! Configuration: a TOML file (`--config`) overlaid by `DROVER_*` environment variables,
//! validated once at start into a typed [`Config`].
//!
//! | file key                  | env var                          | default                 |
//! |---------------------------|----------------------------------|-------------------------|
//! | `database_url`            | `DROVER_DATABASE_URL`            | (required: control DB)  |
//! | `listen`                  | `DROVER_LISTEN`                  | `127.0.0.1:8080`        |
//! | —                         | `DROVER_ADMIN_TOKEN`             | (required by `serve`)   |
//! | `admin_token_ref`         | `DROVER_ADMIN_TOKEN_REF`         |                         |
//! | —                         | `DROVER_RESOLVER_TOKEN`          | (optional)              |
//! | `resolver_token_ref`      | `DROVER_RESOLVER_TOKEN_REF`      |                         |
//! | `migrations_dir`          | `DROVER_MIGRATIONS_DIR`          | `./tenant-migrations`   |
//! | `secrets_dir`             | `DROVER_SECRETS_DIR`             | (none)                  |
//! | `provision_url`           | `DROVER_PROVISION_URL`           | (none: one server `default`) |
//! | `[[provision_servers]]`   | —                                | (see `provision::servers`) |
//! | `provision_db_name`       | `DROVER_PROVISION_DB_NAME`       | `t_{ident}`             |
//! | `provision_db_user`       | `DROVER_PROVISION_DB_USER`       | `t_{ident}`             |
//! | `provision_secret_ref`    | `DROVER_PROVISION_SECRET_REF`    | `file:tenants/{slug}`   |
//! | `provision_retries`       | `DROVER_PROVISION_RETRIES`       | `5`                     |
//! | `provision_retry_backoff` | `DROVER_PROVISION_RETRY_BACKOFF` | `2s`                    |
//! | `instance_id`             | `DROVER_INSTANCE_ID`             | hostname-pid            |
//! | `log_format`              | `DROVER_LOG_FORMAT`              | `pretty` (or `json`)    |
//! | `log`                     | `DROVER_LOG`                     | `info` (tracing filter) |
//! | `pool_size`               | `DROVER_POOL_SIZE`               | `16`                    |
//! | `provisioning_stuck_after`| `DROVER_PROVISIONING_STUCK_AFTER`| `15m`                   |
//! | `shutdown_grace`          | `DROVER_SHUTDOWN_GRACE`          | `30s`                   |
//! | `max_body_bytes`          | `DROVER_MAX_BODY_BYTES`          | `262144`                |
//! | `max_set_bytes`           | `DROVER_MAX_SET_BYTES`           | `16777216` (push body)  |
//! | `secret_ttl`              | `DROVER_SECRET_TTL`              | `60s`                   |
//! | `secret_stale_for`        | `DROVER_SECRET_STALE_FOR`        | `5m`                    |
//! | `secret_negative_ttl`     | `DROVER_SECRET_NEGATIVE_TTL`     | `2s`                    |
//! | `tenant_cache_ttl`        | `DROVER_TENANT_CACHE_TTL`        | `30s`                   |
//! | `vault_addr`              | `DROVER_VAULT_ADDR`              | (none)                  |
//! | —                         | `DROVER_VAULT_TOKEN`             | (or `vault_token_file`) |
//! | `vault_token_file`        | `DROVER_VAULT_TOKEN_FILE`        |                         |
//! | `vault_namespace`         | `DROVER_VAULT_NAMESPACE`         |                         |
//! | `vault_timeout`           | `DROVER_VAULT_TIMEOUT`           | `5s`                    |
//! | `ca_file`                 | `DROVER_CA_FILE`                 | (webpki roots)          |
//! | `tls_cert_file`           | `DROVER_TLS_CERT_FILE`           | (none: plain HTTP)      |
//! | `tls_key_file`            | `DROVER_TLS_KEY_FILE`            | (none: plain HTTP)      |
//! | `wave_lease`              | `DROVER_WAVE_LEASE`              | `30s`                   |
//! | `worker_slots`            | `DROVER_WORKER_SLOTS`            | `16`                    |
//! | `lock_wait`               | `DROVER_LOCK_WAIT`               | `10s`                   |
//! | `retry_backoff`           | `DROVER_RETRY_BACKOFF`           | `1s`                    |
//! | `leader_ttl`              | `DROVER_LEADER_TTL`              | `15s`                   |
//! | `prometheus_url`          | `DROVER_PROMETHEUS_URL`          | (none: no prometheus checks) |
//! | `env_secret_prefix`       | `DROVER_ENV_SECRET_PREFIX`       | `TENANT_`               |
//! | `vault_allowed_prefixes`  | `DROVER_VAULT_ALLOWED_PREFIXES`  | `secret/tenants` (`*`: any path) |
//! | `webhook_retry_backoff`   | `DROVER_WEBHOOK_RETRY_BACKOFF`   | `5s`                    |
//! | `webhook_give_up_after`   | `DROVER_WEBHOOK_GIVE_UP_AFTER`   | `24h`                   |
//! | `webhook_timeout`         | `DROVER_WEBHOOK_TIMEOUT`         | `10s`                   |
//! | `stream_max_clients`      | `DROVER_STREAM_MAX_CLIENTS`      | `256`                   |
//! | `console_session_ttl`     | `DROVER_CONSOLE_SESSION_TTL`     | `8h`                    |
//!
//! Env wins over the file. Tokens come from the environment or from secret references,
//! never from the command line or as plain values in the file (files get copied around).
//! Every problem found is reported with the key or variable that caused it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::secrets::{self, SecretRef};

/// Keys accepted in the TOML file. Env var = `DROVER_` + upper-case key.
const FILE_KEYS: &[&str] = &[
    "database_url",
    "listen",
    "admin_token_ref",
    "resolver_token_ref",
    "migrations_dir",
    "secrets_dir",
    "provision_url",
    "provision_db_name",
    "provision_db_user",
    "provision_secret_ref",
    "provision_retries",
    "provision_retry_backoff",
    "instance_id",
    "log_format",
    "log",
    "pool_size",
    "provisioning_stuck_after",
    "shutdown_grace",
    "max_body_bytes",
    "max_set_bytes",
    "secret_ttl",
    "secret_stale_for",
    "secret_negative_ttl",
    "tenant_cache_ttl",
    "vault_addr",
    "vault_token_file",
    "vault_namespace",
    "vault_timeout",
    "ca_file",
    "tls_cert_file",
    "tls_key_file",
    "wave_lease",
    "worker_slots",
    "lock_wait",
    "retry_backoff",
    "leader_ttl",
    "prometheus_url",
    "env_secret_prefix",
    "vault_allowed_prefixes",
    "webhook_retry_backoff",
    "webhook_give_up_after",
    "webhook_timeout",
    "stream_max_clients",
    "console_session_ttl",
];

/// Keys only accepted from the environment.
const ENV_ONLY_KEYS: &[&str] = &["admin_token", "resolver_token", "vault_token"];

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for terminals.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Validated configuration. `Debug` never shows secrets (they are `SecretString`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Control-plane database URL.
    pub database_url: Option<SecretString>,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Bearer token for admin endpoints.
    pub admin_token: Option<SecretString>,
    /// Bearer token for `/v1/resolve` (the admin token also works there).
    pub resolver_token: Option<SecretString>,
    /// Directory of tenant migrations.
    pub migrations_dir: PathBuf,
    /// Directory `file:` secret references are read under.
    pub secrets_dir: Option<PathBuf>,
    /// Where and how tenant databases are created.
    pub provision: ProvisionConfig,
    /// This replica's name in leases and events.
    pub instance_id: String,
    /// Log format.
    pub log_format: LogFormat,
    /// `tracing` filter directive, e.g. `info,drover=debug`.
    pub log_filter: String,
    /// Control-plane connection pool size.
    pub pool_size: usize,
    /// How long a tenant may sit in `provisioning` before the health report flags it.
    pub provisioning_stuck_after: Duration,
    /// How long shutdown waits for in-flight work.
    pub shutdown_grace: Duration,
    /// Largest accepted HTTP request body.
    pub max_body_bytes: usize,
    /// Largest body of `POST /v1/migration-sets` (a whole migration set in JSON).
    pub max_set_bytes: usize,
    /// Secret and tenant caching for resolution.
    pub cache: CacheConfig,
    /// Vault / OpenBao, when `vault:` references are used.
    pub vault: Option<crate::secrets::VaultConfig>,
    /// How this replica works on waves.
    pub waves: WaveConfig,
    /// CA bundle (PEM) for `sslmode=verify-ca|verify-full` when a connection names none.
    pub ca_file: Option<PathBuf>,
    /// HTTPS on the listener: the certificate chain and its key (PEM), both or neither.
    pub https: Option<HttpsFiles>,
    /// The leader lease's length; renewed every third of it.
    pub leader_ttl: Duration,
    /// Prometheus (HTTP API base URL) that `prometheus` analysis checks query.
    pub prometheus_url: Option<String>,
    /// Which secrets a tenant's reference may name (`env_secret_prefix`,
    /// `vault_allowed_prefixes`, never drover's own token files).
    pub ref_scope: secrets::RefScope,
    /// Webhook delivery and event stream limits.
    pub events: EventsConfig,
    /// How long a web console session lasts after login (the cookie's Max-Age too).
    pub console_session_ttl: Duration,
}

/// The listener's certificate chain and private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Webhook deliveries and event streams.
#[derive(Debug, Clone, Copy)]
pub struct EventsConfig {
    /// First retry delay of a failed delivery; doubles per attempt (capped at 1 h), jittered.
    pub retry_backoff: Duration,
    /// A delivery still failing this long after its event is `dead`.
    pub give_up_after: Duration,
    /// Longest a receiver may take to answer one delivery.
    pub timeout: Duration,
    /// Event stream clients one replica serves at once.
    pub stream_max_clients: usize,
}

/// Provisioning: the servers and the names a tenant created from its slug gets.
#[derive(Debug, Clone)]
pub struct ProvisionConfig {
    /// `[[provision_servers]]`, or `DROVER_PROVISION_URL` as `default`; empty: provisioning
    /// is refused.
    pub servers: Vec<crate::provision::Server>,
    /// Template of `db_name` (`{slug}`, `{ident}` = slug with `-` → `_`).
    pub db_name: String,
    /// Template of `db_user`.
    pub db_user: String,
    /// Template of `db_secret_ref`.
    pub secret_ref: String,
    /// Automatic retries of a retryable failure (0: none).
    pub retries: u32,
    /// First retry delay; doubles per retry, capped at 5 minutes.
    pub retry_backoff: Duration,
}

/// How this replica works on migration waves.
#[derive(Debug, Clone, Copy)]
pub struct WaveConfig {
    /// A claimed tenant is this replica's for this long unless renewed (renewed every third).
    pub lease: Duration,
    /// Tenants this replica migrates at once, over all waves.
    pub slots: usize,
    /// How long to poll for a tenant's advisory lock before giving up (retryable).
    pub lock_wait: Duration,
    /// First retry delay; doubles per attempt, capped at 60 s.
    pub retry_backoff: Duration,
}

/// How long resolution trusts what it cached.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// A resolved secret is reused this long without asking the backend.
    pub secret_ttl: Duration,
    /// When the backend fails, a value past its TTL is still served this much longer.
    pub secret_stale_for: Duration,
    /// A failed read is remembered this long so a broken backend is not hammered.
    pub secret_negative_ttl: Duration,
    /// A tenant row is reused this long when change notifications are not arriving.
    pub tenant_ttl: Duration,
}

/// One thing wrong with the configuration, naming where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// `DROVER_LISTEN (environment)` or `listen (drover.toml)`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Every problem found while loading, so one run of `check-config` shows them all.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in key order.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.problems {
            writeln!(f, "  {}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn one(key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![ConfigProblem {
                key: key.to_string(),
                message: message.into(),
            }],
        }
    }
}

/// Where a raw value came from, for error messages.
struct Raw {
    value: String,
    origin: String,
}

fn env_name(key: &str) -> String {
    format!("DROVER_{}", key.to_ascii_uppercase())
}

impl Config {
    /// Loads the optional TOML file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with(file, &|k| std::env::var(k).ok())
    }

    /// Like [`Config::load`] with an injectable environment (tests).
    pub fn load_with(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut raw = BTreeMap::new();
        let mut servers = None;
        if let Some(path) = file {
            servers = read_file(path, &mut raw)?;
        }
        for key in FILE_KEYS.iter().chain(ENV_ONLY_KEYS) {
            let name = env_name(key);
            if let Some(value) = env(&name).filter(|v| !v.is_empty()) {
                let origin = format!("{name} (environment)");
                raw.insert(*key, Raw { value, origin });
            }
        }
        let mut b = Builder {
            raw,
            servers,
            problems: Vec::new(),
        };
        let config = b.build();
        if b.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                problems: b.problems,
            })
        }
    }

    /// The control DB URL, or an error telling the user how to set it.
    pub fn require_database_url(&self) -> Result<&SecretString, ConfigError> {
        self.database_url.as_ref().ok_or_else(|| {
            ConfigError::one(
                "DROVER_DATABASE_URL",
                "the control-plane database URL is required (set DROVER_DATABASE_URL or database_url in the config file)",
            )
        })
    }

    /// Everything `drover serve` needs, checked up front.
    pub fn require_serve(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if let Err(e) = self.require_database_url() {
            problems.extend(e.problems);
        }
        if self.admin_token.is_none() {
            problems.push(ConfigProblem {
                key: "DROVER_ADMIN_TOKEN".into(),
                message: "an admin token is required (set DROVER_ADMIN_TOKEN or DROVER_ADMIN_TOKEN_REF=file:admin-token)".into(),
            });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

/// Reads the file's plain keys into `raw`; returns its `[[provision_servers]]`, if any.
fn read_file(
    path: &Path,
    raw: &mut BTreeMap<&'static str, Raw>,
) -> Result<Option<(toml::Value, String)>, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::one(&shown, format!("cannot read config file: {e}")))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e: toml::de::Error| {
        // The parser's own Display quotes the offending line, which may hold a
        // password (an unquoted database_url): report the position only.
        let line = e.span().map_or(0, |sp| {
            text[..sp.start.min(text.len())].matches('\n').count() + 1
        });
        ConfigError::one(
            &shown,
            format!("not valid TOML at line {line}: {}", e.message()),
        )
    })?;
    let mut problems = Vec::new();
    let mut servers = None;
    for (key, value) in table {
        let origin = format!("{key} ({shown})");
        if key == "provision_servers" {
            servers = Some((value, shown.clone()));
            continue;
        }
        let Some(known) = FILE_KEYS.iter().find(|k| **k == key) else {
            let hint = if ENV_ONLY_KEYS.contains(&key.as_str()) {
                format!(
                    "tokens are not accepted in the file; use {}_REF or the environment",
                    env_name(&key)
                )
            } else {
                format!("unknown key; known keys: {}", FILE_KEYS.join(", "))
            };
            problems.push(ConfigProblem {
                key: origin,
                message: hint,
            });
            continue;
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            other => {
                problems.push(ConfigProblem {
                    key: origin,
                    message: format!("expected a string or integer, found {}", other.type_str()),
                });
                continue;
            }
        };
        raw.insert(known, Raw { value, origin });
    }
    if problems.is_empty() {
        Ok(servers)
    } else {
        Err(ConfigError { problems })
    }
}

struct Builder {
    raw: BTreeMap<&'static str, Raw>,
    /// The file's `provision_servers` value and the file's name.
    servers: Option<(toml::Value, String)>,
    problems: Vec<ConfigProblem>,
}

impl Builder {
    fn build(&mut self) -> Config {
        let secrets_dir = self.take("secrets_dir").map(|r| PathBuf::from(r.value));
        let own_files = ["admin_token_ref", "resolver_token_ref"]
            .iter()
            .filter_map(|k| self.raw.get(k))
            .filter_map(|r| r.value.parse::<SecretRef>().ok())
            .filter(|r| r.scheme() == secrets::Scheme::File)
            .map(|r| r.locator().to_string())
            .collect();
        let admin_token = self.token("admin_token", secrets_dir.as_deref());
        let resolver_token = self.token("resolver_token", secrets_dir.as_deref());
        let ref_scope = secrets::RefScope::new(
            self.parsed("env_secret_prefix", secrets::DEFAULT_ENV_PREFIX, |v| {
                secrets::check_env_prefix(v).map(|()| v.to_string())
            }),
            self.parsed(
                "vault_allowed_prefixes",
                secrets::DEFAULT_VAULT_PREFIXES,
                secrets::parse_vault_prefixes,
            ),
            own_files,
        );
        let provision = self.provision(&ref_scope);
        Config {
            provision,
            ref_scope,
            database_url: self
                .take("database_url")
                .map(|r| SecretString::from(r.value)),
            listen: self.parsed("listen", "127.0.0.1:8080", |v| {
                v.parse()
                    .map_err(|_| "expected HOST:PORT, e.g. 127.0.0.1:8080".into())
            }),
            admin_token,
            resolver_token,
            migrations_dir: PathBuf::from(
                self.take("migrations_dir")
                    .map_or_else(|| "./tenant-migrations".into(), |r| r.value),
            ),
            secrets_dir,
            instance_id: self
                .take("instance_id")
                .map_or_else(default_instance_id, |r| r.value),
            log_format: self.parsed("log_format", "pretty", |v| match v {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected pretty or json".into()),
            }),
            log_filter: self.take("log").map_or_else(|| "info".into(), |r| r.value),
            pool_size: self.parsed("pool_size", "16", |v| match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err("expected an integer between 1 and 1000".into()),
            }),
            provisioning_stuck_after: self.parsed(
                "provisioning_stuck_after",
                "15m",
                parse_duration,
            ),
            shutdown_grace: self.parsed("shutdown_grace", "30s", parse_duration),
            max_body_bytes: self.parsed("max_body_bytes", "262144", |v| match v.parse::<usize>() {
                Ok(n) if n >= 1024 => Ok(n),
                _ => Err("expected an integer of at least 1024".into()),
            }),
            max_set_bytes: self.parsed("max_set_bytes", "16777216", |v| match v.parse::<usize>() {
                Ok(n) if n >= 1024 => Ok(n),
                _ => Err("expected an integer of at least 1024".into()),
            }),
            cache: CacheConfig {
                secret_ttl: self.parsed("secret_ttl", "60s", parse_duration),
                secret_stale_for: self.parsed("secret_stale_for", "5m", parse_duration),
                secret_negative_ttl: self.parsed("secret_negative_ttl", "2s", parse_duration),
                tenant_ttl: self.parsed("tenant_cache_ttl", "30s", parse_duration),
            },
            vault: self.vault(),
            ca_file: self.take("ca_file").map(|r| PathBuf::from(r.value)),
            https: self.https(),
            leader_ttl: self.parsed("leader_ttl", "15s", |v| match parse_duration(v) {
                Ok(d) if d >= Duration::from_secs(1) => Ok(d),
                Ok(_) => Err("must be at least 1s".into()),
                Err(e) => Err(e),
            }),
            prometheus_url: self.take("prometheus_url").and_then(|r| {
                crate::waves::analysis::prometheus::check_url(&r.value)
                    .map_err(|e| {
                        self.problems.push(ConfigProblem {
                            key: r.origin.clone(),
                            message: e.to_string(),
                        })
                    })
                    .ok()
            }),
            events: EventsConfig {
                retry_backoff: self.parsed("webhook_retry_backoff", "5s", positive_duration),
                give_up_after: self.parsed("webhook_give_up_after", "24h", positive_duration),
                timeout: self.parsed("webhook_timeout", "10s", positive_duration),
                stream_max_clients: self.parsed("stream_max_clients", "256", |v| {
                    match v.parse::<usize>() {
                        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
                        _ => Err("expected an integer between 1 and 100000".into()),
                    }
                }),
            },
            console_session_ttl: self.parsed(
                "console_session_ttl",
                "8h",
                |v| match parse_duration(v) {
                    Ok(d)
                        if d >= Duration::from_secs(60)
                            && d <= Duration::from_secs(30 * 86_400) =>
                    {
                        Ok(d)
                    }
                    Ok(_) => Err("must be between 1m and 30d".into()),
                    Err(e) => Err(e),
                },
            ),
            waves: WaveConfig {
                lease: self.parsed("wave_lease", "30s", |v| match parse_duration(v) {
                    Ok(d) if d >= Duration::from_secs(1) => Ok(d),
                    Ok(_) => Err("must be at least 1s".into()),
                    Err(e) => Err(e),
                }),
                slots: self.parsed("worker_slots", "16", |v| match v.parse::<usize>() {
                    Ok(n) if (1..=1000).contains(&n) => Ok(n),
                    _ => Err("expected an integer between 1 and 1000".into()),
                }),
                lock_wait: self.parsed("lock_wait", "10s", parse_duration),
                retry_backoff: self.parsed("retry_backoff", "1s", parse_duration),
            },
        }
    }

    /// `tls_cert_file` and `tls_key_file`: both or neither.
    fn https(&mut self) -> Option<HttpsFiles> {
        match (self.take("tls_cert_file"), self.take("tls_key_file")) {
            (Some(cert), Some(key)) => Some(HttpsFiles {
                cert: PathBuf::from(cert.value),
                key: PathBuf::from(key.value),
            }),
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => {
                self.problems.push(ConfigProblem {
                    key: one.origin,
                    message: "HTTPS needs both tls_cert_file and tls_key_file (DROVER_TLS_CERT_FILE, DROVER_TLS_KEY_FILE)".into(),
                });
                None
            }
        }
    }

    fn provision(&mut self, scope: &secrets::RefScope) -> ProvisionConfig {
        use crate::provision::servers;
        let url = self.take("provision_url");
        let mut list = Vec::new();
        match (url, self.servers.take()) {
            (Some(u), Some((_, file))) => self.problems.push(ConfigProblem {
                key: u.origin,
                message: format!(
                    "set either DROVER_PROVISION_URL or [[provision_servers]] (in {file}), not both"
                ),
            }),
            (Some(u), None) => {
                match servers::default_server(&SecretString::from(u.value), &u.origin) {
                    Ok(s) => list.push(s),
                    Err(p) => self.problems.push(p),
                }
            }
            (None, Some((value, file))) => {
                let (found, problems) = servers::parse_servers(&value, &file);
                list = found;
                self.problems.extend(problems);
            }
            (None, None) => {}
        }
        let db_name = self.template("provision_db_name", "t_{ident}", |v| {
            crate::registry::DbIdent::parse("db_name", v)
                .map(drop)
                .map_err(|e| e.to_string())
        });
        let db_user = self.template("provision_db_user", "t_{ident}", |v| {
            crate::registry::DbIdent::parse("db_user", v)
                .map(drop)
                .map_err(|e| e.to_string())
        });
        let secret_ref = self.template("provision_secret_ref", "file:tenants/{slug}", |v| {
            let r: SecretRef = v
                .parse()
                .map_err(|e: secrets::SecretRefError| e.to_string())?;
            scope.check(&r).map_err(|e| e.to_string())
        });
        ProvisionConfig {
            servers: list,
            db_name,
            db_user,
            secret_ref,
            retries: self.parsed("provision_retries", "5", |v| match v.parse::<u32>() {
                Ok(n) if n <= 100 => Ok(n),
                _ => Err("expected an integer between 0 and 100".into()),
            }),
            retry_backoff: self.parsed("provision_retry_backoff", "2s", |v| {
                match parse_duration(v) {
                    Ok(d) if d >= Duration::from_millis(10) => Ok(d),
                    Ok(_) => Err("must be at least 10ms".into()),
                    Err(e) => Err(e),
                }
            }),
        }
    }

    /// A name template: it must name the tenant (`{slug}` or `{ident}`), and what it makes
    /// of a short slug must pass `check`.
    fn template(
        &mut self,
        key: &str,
        default: &str,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> String {
        let Some(r) = self.take(key) else {
            return default.to_string();
        };
        let sample = crate::provision::servers::render(&r.value, "acme-1");
        let problem = if !(r.value.contains("{slug}") || r.value.contains("{ident}")) {
            Some("must contain {slug} or {ident}, or every tenant would get the same name".into())
        } else {
            check(&sample)
                .err()
                .map(|e| format!("for slug acme-1 it gives {sample:?}: {e}"))
        };
        match problem {
            Some(message) => {
                self.problems.push(ConfigProblem {
                    key: r.origin,
                    message,
                });
                default.to_string()
            }
            None => r.value,
        }
    }

    fn vault(&mut self) -> Option<crate::secrets::VaultConfig> {
        let addr = self.take("vault_addr");
        let token = self.take("vault_token");
        let token_file = self.take("vault_token_file");
        let namespace = self.take("vault_namespace").map(|r| r.value);
        let timeout = self.parsed("vault_timeout", "5s", parse_duration);
        let addr = addr?;
        if !(addr.value.starts_with("http://") || addr.value.starts_with("https://")) {
            self.problems.push(ConfigProblem {
                key: addr.origin,
                message: "expected an http:// or https:// URL".into(),
            });
            return None;
        }
        let token = match (token, token_file) {
            (Some(t), None) => SecretString::from(t.value),
            (None, Some(f)) => match std::fs::read_to_string(&f.value) {
                Ok(t) => SecretString::from(t.trim_end_matches(['\n', '\r']).to_string()),
                Err(e) => {
                    self.problems.push(ConfigProblem {
                        key: f.origin,
                        message: format!("cannot read the token file: {}", e.kind()),
                    });
                    return None;
                }
            },
            (Some(_), Some(f)) => {
                self.problems.push(ConfigProblem {
                    key: f.origin,
                    message: "set either DROVER_VAULT_TOKEN or DROVER_VAULT_TOKEN_FILE, not both"
                        .into(),
                });
                return None;
            }
            (None, None) => {
                self.problems.push(ConfigProblem {
                    key: addr.origin,
                    message:
                        "vault needs a token: set DROVER_VAULT_TOKEN or DROVER_VAULT_TOKEN_FILE"
                            .into(),
                });
                return None;
            }
        };
        Some(crate::secrets::VaultConfig {
            addr: addr.value,
            token,
            namespace,
            timeout,
        })
    }

    fn take(&mut self, key: &str) -> Option<Raw> {
        self.raw.remove(key)
    }

    fn parsed<T>(
        &mut self,
        key: &str,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> T {
        let raw = self.take(key);
        if let Some(r) = &raw {
            match parse(r.value.trim()) {
                Ok(v) => return v,
                Err(message) => self.problems.push(ConfigProblem {
                    key: r.origin.clone(),
                    message,
                }),
            }
        }
        parse(default).unwrap_or_else(|_| unreachable!("default for {key} must parse"))
    }

    /// A token straight from the environment, or read through `<key>_ref`.
    fn token(&mut self, key: &str, secrets_dir: Option<&Path>) -> Option<SecretString> {
        let direct = self.take(key);
        let by_ref = self.take(&format!("{key}_ref"));
        let (value, origin) = match (direct, by_ref) {
            (Some(d), Some(r)) => {
                self.problems.push(ConfigProblem {
                    key: r.origin,
                    message: format!(
                        "set either {} or {}_REF, not both",
                        env_name(key),
                        env_name(key)
                    ),
                });
                let _ = d;
                return None;
            }
            (Some(d), None) => (SecretString::from(d.value), d.origin),
            (None, Some(r)) => {
                let parsed = match r.value.parse::<SecretRef>() {
                    Ok(p) => p,
                    Err(e) => {
                        self.problems.push(ConfigProblem {
                            key: r.origin,
                            message: e.to_string(),
                        });
                        return None;
                    }
                };
                match secrets::read_local(&parsed, secrets_dir) {
                    Ok(v) => (v, r.origin),
                    Err(e) => {
                        self.problems.push(ConfigProblem {
                            key: r.origin,
                            message: e.to_string(),
                        });
                        return None;
                    }
                }
            }
            (None, None) => return None,
        };
        use secrecy::ExposeSecret;
        // A token file written by an editor ends in a newline; the header never does.
        let value = SecretString::from(value.expose_secret().trim().to_string());
        if value.expose_secret().len() < 16 {
            self.problems.push(ConfigProblem {
                key: origin,
                message: "token must be at least 16 characters (try: openssl rand -hex 32)".into(),
            });
            return None;
        }
        Some(value)
    }
}

/// `30`, `30s`, `5m`, `2h`, `90d` → Duration.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 5m or 2h, got {v:?}"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?}; use ms, s, m, h or d"
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}

fn positive_duration(v: &str) -> Result<Duration, String> {
    match parse_duration(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than 0".into()),
        Err(e) => Err(e),
    }
}

fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "drover".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_wins_over_the_file() {
        let dir = std::env::temp_dir().join(format!("drover-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("drover.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\npool_size = 4\n").unwrap();

        let cfg =
            Config::load_with(Some(&file), &env(&[("DROVER_LISTEN", "0.0.0.0:7000")])).unwrap();

        assert_eq!(cfg.listen.port(), 7000);
        assert_eq!(cfg.pool_size, 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = Config::load_with(
            None,
            &env(&[
                ("DROVER_LISTEN", "nope"),
                ("DROVER_POOL_SIZE", "0"),
                ("DROVER_ADMIN_TOKEN", "short"),
            ]),
        )
        .unwrap_err();

        let keys: Vec<_> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"DROVER_LISTEN (environment)"), "{keys:?}");
        assert!(keys.contains(&"DROVER_POOL_SIZE (environment)"), "{keys:?}");
        assert!(
            keys.contains(&"DROVER_ADMIN_TOKEN (environment)"),
            "{keys:?}"
        );
        assert!(
            !err.to_string().contains("short"),
            "token value must not be echoed"
        );
    }

    #[test]
    fn unknown_file_keys_and_plain_tokens_in_the_file_are_refused() {
        let dir = std::env::temp_dir().join(format!("drover-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("drover.toml");
        std::fs::write(
            &file,
            "lisen = \"x\"\nadmin_token = \"0123456789abcdef0\"\n",
        )
        .unwrap();

        let err = Config::load_with(Some(&file), &env(&[])).unwrap_err();

        assert_eq!(err.problems.len(), 2);
        assert!(err.to_string().contains("lisen"));
        assert!(err.to_string().contains("DROVER_ADMIN_TOKEN_REF"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn token_can_come_from_a_file_reference() {
        let dir = std::env::temp_dir().join(format!("drover-cfg3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("admin-token"), "0123456789abcdef-token\n").unwrap();

        let cfg = Config::load_with(
            None,
            &env(&[
                ("DROVER_SECRETS_DIR", dir.to_str().unwrap()),
                ("DROVER_ADMIN_TOKEN_REF", "file:admin-token"),
            ]),
        )
        .unwrap();

        assert_eq!(
            cfg.admin_token.unwrap().expose_secret(),
            "0123456789abcdef-token"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_toml_syntax_error_reports_the_line_but_not_its_text() {
        let dir = std::env::temp_dir().join(format!("drover-cfg4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("drover.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1\"\ndatabase_url = postgres://u:hunter2@h/db\n",
        )
        .unwrap();

        let err = Config::load_with(Some(&file), &env(&[]))
            .unwrap_err()
            .to_string();

        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secret_ref_scope_comes_from_config_and_covers_drovers_own_token_file() {
        let dir = std::env::temp_dir().join(format!("drover-cfg5-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("admin-token"), "0123456789abcdef-token\n").unwrap();

        let cfg = Config::load_with(
            None,
            &env(&[
                ("DROVER_SECRETS_DIR", dir.to_str().unwrap()),
                ("DROVER_ADMIN_TOKEN_REF", "file:admin-token"),
                ("DROVER_ENV_SECRET_PREFIX", "APP_DB_"),
                ("DROVER_VAULT_ALLOWED_PREFIXES", "kv/apps"),
            ]),
        )
        .unwrap();

        let check = |s: &str| cfg.ref_scope.check(&s.parse().unwrap());
        assert!(check("env:APP_DB_ACME").is_ok());
        assert!(check("env:TENANT_ACME").is_err());
        assert!(check("vault:kv/apps/acme#pw").is_ok());
        assert!(check("vault:secret/tenants/acme#pw").is_err());
        assert!(check("file:admin-token").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_certificate_without_its_key_is_a_config_error_naming_both_settings() {
        let err = Config::load_with(
            None,
            &env(&[("DROVER_TLS_CERT_FILE", "/etc/drover/cert.pem")]),
        )
        .unwrap_err();

        assert!(err.to_string().contains("tls_key_file"), "{err}");
        assert!(err.to_string().contains("DROVER_TLS_CERT_FILE"), "{err}");
    }

    #[test]
    fn an_env_prefix_matching_drover_variables_is_a_config_error() {
        let err =
            Config::load_with(None, &env(&[("DROVER_ENV_SECRET_PREFIX", "DROVER_")])).unwrap_err();

        assert!(
            err.to_string().contains("DROVER_ENV_SECRET_PREFIX"),
            "{err}"
        );
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5 weeks").is_err());
    }
}
