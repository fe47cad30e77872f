//! Configuration: a TOML file (`--config`) overlaid by `DROVER_*` environment variables,
//! validated once at start into a typed [`Config`].
//!
//! Like a command line parsed in two steps, the raw values are kept as typed (a string and
//! where it came from) and the validated `Config` is built from them once:
//!
//! - `keys.rs`: every key, its variable, default and meaning, declared once ([`KEYS`]); the
//!   table of keys lives there and is checked against the list, as is the README's;
//! - `file.rs`: the TOML file → raw values (unknown keys and plain tokens refused);
//! - `build.rs`: raw values → `Config`, collecting every problem;
//! - `values.rs`: durations and other value syntaxes.
//!
//! Env wins over the file. Tokens come from the environment or from secret references,
//! never from the command line or as plain values in the file (files get copied around).
//! Every problem found is reported with the key or variable that caused it.

mod build;
mod file;
pub mod keys;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::secrets;

pub use keys::{Key, KEYS};
pub use values::parse_duration;

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
    /// The web console: session lifetime, its public origin, the proxies it believes.
    pub console: crate::console::ConsoleSettings,
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
            servers = file::read_file(path, &mut raw)?;
        }
        for key in KEYS.iter().filter(|k| k.source != keys::Source::FileTables) {
            let name = keys::env_name(key.name);
            if let Some(value) = env(&name).filter(|v| !v.is_empty()) {
                let origin = format!("{name} (environment)");
                raw.insert(key.name, Raw { value, origin });
            }
        }
        let mut b = build::Builder {
            raw,
            servers,
            problems: Vec::new(),
            read: BTreeSet::new(),
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

#[cfg(test)]
mod tests;
