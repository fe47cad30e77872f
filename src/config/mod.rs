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
//! - `provision.rs`: `DROVER_PROVISION_URL` or the servers, the name templates and the
//!   external servers' callback origin → the provisioning settings;
//! - `servers.rs`: each `[[provision_servers]]` table (`kind` admin or external) → a server;
//! - `values.rs`: value syntaxes (durations are [`crate::duration`]'s).
//!
//! Each domain owns the type of the settings it reads (`secrets::SecretSettings`,
//! `resolve::CacheSettings`, `waves::executor::WorkerSettings`, `events::DeliverySettings`,
//! `provision::ProvisionSettings`, `tls::HttpsFiles`,
//! `retention::RetentionSettings`, `registry::LifecycleSettings`) and its constructor takes only that;
//! this module fills them from the one key table. Only the application, its state and the
//! CLI read [`Config`] itself. Adding a setting: its key in `keys.rs`, the field in the
//! domain's settings type, and the line in `build.rs` (or `provision.rs`) that reads it.
//!
//! Env wins over the file. Tokens come from the environment or from secret references,
//! never from the command line or as plain values in the file (files get copied around).
//! Every problem found is reported with the key or variable that caused it.

mod build;
mod cloud_secrets;
mod file;
pub mod keys;
mod provision;
mod servers;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::events::DeliverySettings;
use crate::provision::ProvisionSettings;
use crate::resolve::CacheSettings;
use crate::secrets::{self, SecretSettings};
use crate::tls::HttpsFiles;
use crate::waves::executor::WorkerSettings;

/// Kept here too: the CLI and the tests read durations as the configuration does.
pub use crate::duration::parse_duration;
pub use keys::{Key, KEYS};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for terminals.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Validated configuration. `Debug` never shows secrets (they are `SecretString`).
///
/// The settings a domain reads are that domain's own type (`provision`, `secrets`, `cache`,
/// `waves`, `events`, `https`); a value several of them need (`instance_id`, `ca_file`,
/// `prometheus_url`, `lock_wait`) is also here once, for the daemon and the CLI.
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
    /// What the secret backends are built from: the `file:` directory and Vault.
    pub secrets: SecretSettings,
    /// Where and how tenant databases are created.
    pub provision: ProvisionSettings,
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
    /// The listener's header-read timeout and connection cap.
    pub listener: ListenerLimits,
    /// Secret and tenant caching for resolution.
    pub cache: CacheSettings,
    /// How this replica works on waves.
    pub waves: WorkerSettings,
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
    pub events: DeliverySettings,
    /// The web console: session lifetime, its public origin, the proxies it believes.
    pub console: crate::origin::ConsoleSettings,
    /// How long each kind of history is kept, and how often the leader prunes.
    pub retention: crate::retention::RetentionSettings,
    /// The registry's lifecycle rules: reserved slugs, portal URLs, renames, trials.
    pub lifecycle: crate::registry::LifecycleSettings,
    /// Schema drift scans and replays.
    pub drift: crate::drift::DriftSettings,
}

/// What one client may hold of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// A request's headers must arrive within this (an idle keep-alive connection is
    /// closed after it too).
    pub header_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
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
            config_file: file.map(Path::to_path_buf),
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
