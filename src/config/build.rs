//! Raw values → the typed [`Config`], once. Each key's default and name come from
//! [`keys::KEYS`](super::keys::KEYS); every problem is collected with the key or variable
//! that caused it, so one `check-config` run shows them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use super::keys::{self, env_name, IfUnset};
use super::values::{default_instance_id, parse_duration, positive_duration};
use super::{
    CacheConfig, Config, ConfigProblem, EventsConfig, HttpsFiles, LogFormat, ProvisionConfig, Raw,
    WaveConfig,
};
use crate::console::{ConsoleSettings, PublicUrl, TrustedProxies};
use crate::secrets::{self, SecretRef};

pub(super) struct Builder {
    pub(super) raw: BTreeMap<&'static str, Raw>,
    /// The file's `provision_servers` value and the file's name.
    pub(super) servers: Option<(toml::Value, String)>,
    pub(super) problems: Vec<ConfigProblem>,
    /// Every key the builder asked for, set or not (a test checks it is all of them).
    pub(super) read: BTreeSet<&'static str>,
}

impl Builder {
    pub(super) fn build(&mut self) -> Config {
        let secrets_dir = self.take("secrets_dir").map(|r| PathBuf::from(r.value));
        let own_files = ["admin_token_ref", "resolver_token_ref"]
            .iter()
            .filter_map(|k| self.raw.get(k))
            .filter_map(|r| r.value.parse::<SecretRef>().ok())
            .filter(|r| r.scheme() == &secrets::FILE)
            .map(|r| r.locator().to_string())
            .collect();
        let admin_token = self.token("admin_token", secrets_dir.as_deref());
        let resolver_token = self.token("resolver_token", secrets_dir.as_deref());
        let ref_scope = secrets::RefScope::new(
            self.parsed("env_secret_prefix", |v| {
                secrets::check_env_prefix(v).map(|()| v.to_string())
            }),
            self.parsed("vault_allowed_prefixes", secrets::parse_vault_prefixes),
            own_files,
        );
        let provision = self.provision(&ref_scope);
        let https = self.https();
        let https_listener = https.is_some();
        Config {
            provision,
            ref_scope,
            database_url: self
                .take("database_url")
                .map(|r| SecretString::from(r.value)),
            listen: self.parsed("listen", |v| {
                v.parse()
                    .map_err(|_| "expected HOST:PORT, e.g. 127.0.0.1:8080".into())
            }),
            admin_token,
            resolver_token,
            migrations_dir: PathBuf::from(self.string("migrations_dir")),
            secrets_dir,
            instance_id: self
                .take("instance_id")
                .map_or_else(default_instance_id, |r| r.value),
            log_format: self.parsed("log_format", |v| match v {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected pretty or json".into()),
            }),
            log_filter: self.string("log"),
            pool_size: self.parsed("pool_size", |v| match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err("expected an integer between 1 and 1000".into()),
            }),
            provisioning_stuck_after: self.parsed("provisioning_stuck_after", parse_duration),
            shutdown_grace: self.parsed("shutdown_grace", parse_duration),
            max_body_bytes: self.parsed("max_body_bytes", |v| match v.parse::<usize>() {
                Ok(n) if n >= 1024 => Ok(n),
                _ => Err("expected an integer of at least 1024".into()),
            }),
            max_set_bytes: self.parsed("max_set_bytes", |v| match v.parse::<usize>() {
                Ok(n) if n >= 1024 => Ok(n),
                _ => Err("expected an integer of at least 1024".into()),
            }),
            cache: CacheConfig {
                secret_ttl: self.parsed("secret_ttl", parse_duration),
                secret_stale_for: self.parsed("secret_stale_for", parse_duration),
                secret_negative_ttl: self.parsed("secret_negative_ttl", parse_duration),
                tenant_ttl: self.parsed("tenant_cache_ttl", parse_duration),
            },
            vault: self.vault(),
            ca_file: self.take("ca_file").map(|r| PathBuf::from(r.value)),
            https,
            leader_ttl: self.parsed("leader_ttl", |v| match parse_duration(v) {
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
                retry_backoff: self.parsed("webhook_retry_backoff", positive_duration),
                give_up_after: self.parsed("webhook_give_up_after", positive_duration),
                timeout: self.parsed("webhook_timeout", positive_duration),
                stream_max_clients: self.parsed("stream_max_clients", |v| {
                    match v.parse::<usize>() {
                        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
                        _ => Err("expected an integer between 1 and 100000".into()),
                    }
                }),
            },
            console: self.console(https_listener),
            waves: WaveConfig {
                lease: self.parsed("wave_lease", |v| match parse_duration(v) {
                    Ok(d) if d >= Duration::from_secs(1) => Ok(d),
                    Ok(_) => Err("must be at least 1s".into()),
                    Err(e) => Err(e),
                }),
                slots: self.parsed("worker_slots", |v| match v.parse::<usize>() {
                    Ok(n) if (1..=1000).contains(&n) => Ok(n),
                    _ => Err("expected an integer between 1 and 1000".into()),
                }),
                lock_wait: self.parsed("lock_wait", parse_duration),
                retry_backoff: self.parsed("retry_backoff", parse_duration),
            },
        }
    }

    /// The console's session lifetime, public origin and trusted proxies.
    fn console(&mut self, https_listener: bool) -> ConsoleSettings {
        ConsoleSettings {
            session_ttl: self.parsed("console_session_ttl", |v| match parse_duration(v) {
                Ok(d) if d >= Duration::from_secs(60) && d <= Duration::from_secs(30 * 86_400) => {
                    Ok(d)
                }
                Ok(_) => Err("must be between 1m and 30d".into()),
                Err(e) => Err(e),
            }),
            public_url: self.optional("public_url", PublicUrl::parse),
            trusted_proxies: self
                .optional("trusted_proxies", TrustedProxies::parse)
                .unwrap_or_default(),
            https_listener,
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
        let db_name = self.template("provision_db_name", |v| {
            crate::registry::DbIdent::parse("db_name", v)
                .map(drop)
                .map_err(|e| e.to_string())
        });
        let db_user = self.template("provision_db_user", |v| {
            crate::registry::DbIdent::parse("db_user", v)
                .map(drop)
                .map_err(|e| e.to_string())
        });
        let secret_ref = self.template("provision_secret_ref", |v| {
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
            retries: self.parsed("provision_retries", |v| match v.parse::<u32>() {
                Ok(n) if n <= 100 => Ok(n),
                _ => Err("expected an integer between 0 and 100".into()),
            }),
            retry_backoff: self.parsed("provision_retry_backoff", |v| match parse_duration(v) {
                Ok(d) if d >= Duration::from_millis(10) => Ok(d),
                Ok(_) => Err("must be at least 10ms".into()),
                Err(e) => Err(e),
            }),
        }
    }

    /// A name template: it must name the tenant (`{slug}` or `{ident}`), and what it makes
    /// of a short slug must pass `check`.
    fn template(&mut self, key: &str, check: impl Fn(&str) -> Result<(), String>) -> String {
        let default = Self::default_of(key);
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
        let timeout = self.parsed("vault_timeout", parse_duration);
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

    /// The raw value of a declared key, if set.
    fn take(&mut self, key: &str) -> Option<Raw> {
        self.read.insert(keys::get(key).name);
        self.raw.remove(key)
    }

    /// The declared default of a key that has one.
    fn default_of(key: &str) -> &'static str {
        match keys::get(key).unset {
            IfUnset::Value(v) => v,
            IfUnset::Note(_) | IfUnset::Nothing => {
                unreachable!("config key {key} is read with a default but declares none")
            }
        }
    }

    /// A free-form string, or its declared default.
    fn string(&mut self, key: &str) -> String {
        self.take(key)
            .map_or_else(|| Self::default_of(key).to_string(), |r| r.value)
    }

    /// The value parsed by `parse`, or the declared default (parsed the same way) with a
    /// problem recorded when the value is bad.
    fn parsed<T>(&mut self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> T {
        let default = Self::default_of(key);
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

    /// The value parsed by `parse` when set; `None` (with a problem recorded when the value
    /// is bad) otherwise.
    fn optional<T>(&mut self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let r = self.take(key)?;
        parse(r.value.trim())
            .map_err(|message| {
                self.problems.push(ConfigProblem {
                    key: r.origin.clone(),
                    message,
                })
            })
            .ok()
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
