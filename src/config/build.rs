//! Raw values → the typed [`Config`], once. Each key's default and name come from
//! [`keys::KEYS`](super::keys::KEYS); every problem is collected with the key or variable
//! that caused it, so one `check-config` run shows them all. Keys are read in a fixed
//! order (the order `check-config` lists problems in); the domains' settings are filled
//! from them, and a value several domains read (`instance_id`, `ca_file`, `lock_wait`,
//! `prometheus_url`) is read once and handed to each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use super::keys::{self, env_name, IfUnset};
use super::values::{default_instance_id, networks, positive_duration};
use super::{Config, ConfigProblem, ListenerLimits, LogFormat, Raw};
use crate::drift::DriftSettings;
use crate::duration::parse_duration;
use crate::events::DeliverySettings;
use crate::origin::{ConsoleSettings, PublicUrl, TrustedProxies};
use crate::registry::{parse_reserved_slugs, LifecycleSettings, PortalTemplate};
use crate::resolve::CacheSettings;
use crate::retention::{parse_retention, RetentionSettings};
use crate::secrets::{self, SecretRef, SecretSettings, VaultConfig};
use crate::tls::HttpsFiles;
use crate::waves::executor::WorkerSettings;

pub(super) struct Builder {
    pub(super) raw: BTreeMap<&'static str, Raw>,
    /// The file's `provision_servers` value and the file's name.
    pub(super) servers: Option<(toml::Value, String)>,
    pub(super) problems: Vec<ConfigProblem>,
    /// Every key the builder asked for, set or not (a test checks it is all of them).
    pub(super) read: BTreeSet<&'static str>,
    /// The configuration file, one of drover's own files.
    pub(super) config_file: Option<PathBuf>,
}

impl Builder {
    pub(super) fn build(&mut self) -> Config {
        let secrets_dir = self.take("secrets_dir").map(|r| PathBuf::from(r.value));
        let own_files = self.own_token_files();
        let own_paths = self.own_paths(secrets_dir.as_deref());
        let admin_token = self.token("admin_token", secrets_dir.as_deref());
        let resolver_token = self.token("resolver_token", secrets_dir.as_deref());
        let cloud = self.cloud_secrets();
        let ref_scope = secrets::RefScope::new(
            self.parsed("env_secret_prefix", |v| {
                secrets::check_env_prefix(v).map(|()| v.to_string())
            }),
            self.parsed("vault_allowed_prefixes", secrets::parse_vault_prefixes),
            own_files,
        )
        .with_file_prefixes(
            self.parsed("file_secret_prefix", secrets::parse_file_prefix),
            self.parsed("webhook_secret_prefix", secrets::parse_file_prefix),
        )
        .with_aws_sm(self.parsed("aws_sm_allowed_prefixes", secrets::parse_aws_sm_prefixes))
        .with_gcp_sm(cloud.gcp_scope)
        .with_azure_kv(cloud.azure_scope);
        self.check_own_paths(secrets_dir.as_deref(), &ref_scope, own_paths);
        // `check-config` lists problems in the order keys are read, and that order stays.
        // These two are read early for provisioning; neither can be wrong, so no problem moves.
        let instance_id = self
            .take("instance_id")
            .map_or_else(default_instance_id, |r| r.value);
        let ca_file = self.take("ca_file").map(|r| PathBuf::from(r.value));
        let mut provision = self.provision(&ref_scope, ca_file.clone(), instance_id.clone());
        let database_url = self
            .take("database_url")
            .map(|r| SecretString::from(r.value));
        let listen = self.parsed("listen", |v| {
            v.parse()
                .map_err(|_| "expected HOST:PORT, e.g. 127.0.0.1:8080".into())
        });
        let migrations_dir = PathBuf::from(self.string("migrations_dir"));
        let log_format = self.parsed("log_format", |v| match v {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected pretty or json".into()),
        });
        let log_filter = self.string("log");
        let pool_size = self.parsed("pool_size", |v| integer_in(v, 1, 1000));
        let provisioning_stuck_after = self.parsed("provisioning_stuck_after", parse_duration);
        let shutdown_grace = self.parsed("shutdown_grace", parse_duration);
        let max_body_bytes = self.parsed("max_body_bytes", at_least_1024);
        let max_set_bytes = self.parsed("max_set_bytes", at_least_1024);
        let listener = ListenerLimits {
            header_timeout: self.parsed("http_header_timeout", |v| {
                duration_between(v, 1, 300, "between 1s and 5m")
            }),
            max_connections: self.parsed("http_max_connections", |v| integer_in(v, 1, 1_000_000)),
        };
        let cache = self.cache();
        let vault = self.vault();
        let aws = secrets::AwsSmSettings {
            recovery_window_days: self.parsed(
                "aws_sm_recovery_window_days",
                secrets::parse_recovery_window,
            ),
            timeout: self.parsed("aws_sm_timeout", parse_duration),
        };
        let https = self.https();
        let leader_ttl = self.parsed("leader_ttl", |v| duration_at_least(v, 1, "1s"));
        let prometheus_url = self.prometheus_url();
        let mut events = self.events(&instance_id);
        events.secret_scope = ref_scope.clone();
        let console = self.console(https.is_some());
        self.fill_callback_bases(
            &mut provision.servers,
            console.public_url.as_ref(),
            listen,
            https.is_some(),
        );
        let retention = self.retention();
        let lifecycle = self.lifecycle();
        let drift = self.drift();
        let waves = self.worker(&instance_id, &prometheus_url);
        // Read with the wave keys, where its problem has always been listed.
        provision.lock_wait = waves.lock_wait;
        Config {
            provision,
            ref_scope,
            database_url,
            listen,
            admin_token,
            resolver_token,
            migrations_dir,
            secrets: SecretSettings {
                dir: secrets_dir,
                vault,
                aws,
                gcp: cloud.gcp,
                azure: cloud.azure,
            },
            instance_id,
            log_format,
            log_filter,
            pool_size,
            provisioning_stuck_after,
            shutdown_grace,
            max_body_bytes,
            max_set_bytes,
            listener,
            cache,
            waves,
            ca_file,
            https,
            leader_ttl,
            prometheus_url,
            events,
            console,
            retention,
            lifecycle,
            drift,
        }
    }

    /// Schema drift: the periodic scan, its concurrency, the scratch server for replays.
    fn drift(&mut self) -> DriftSettings {
        let scratch_url = self.take("drift_scratch_url").and_then(|r| {
            let url = SecretString::from(r.value);
            match crate::db::parse_url(&url, "drift_scratch_url") {
                Ok(_) => Some(url),
                Err(e) => {
                    self.problems.push(ConfigProblem {
                        key: r.origin,
                        message: e.to_string(),
                    });
                    None
                }
            }
        });
        DriftSettings {
            scan_interval: self.optional("drift_scan_interval", positive_duration),
            scan_concurrency: self.parsed("drift_scan_concurrency", |v| integer_in(v, 1, 256)),
            scan_max_per_host: self.parsed("drift_scan_max_per_host", |v| integer_in(v, 1, 256)),
            scratch_url,
        }
    }

    /// The registry's lifecycle rules: reserved slugs, the portal URL template, trials,
    /// rename aliases.
    fn lifecycle(&mut self) -> LifecycleSettings {
        LifecycleSettings {
            reserved_slugs: self.parsed("reserved_slugs", parse_reserved_slugs),
            portal_url_template: self.optional("portal_url_template", PortalTemplate::parse),
            trial_warning_before: self.parsed("trial_warning_before", positive_duration),
            rename_alias_ttl: self.parsed("rename_alias_ttl", positive_duration),
        }
    }

    /// Locators of the `file:` references drover's own tokens are read from: tenants may
    /// not name them (read from the raw values, so a bad reference is reported once, by
    /// [`Builder::token`]).
    fn own_token_files(&self) -> Vec<String> {
        ["admin_token_ref", "resolver_token_ref"]
            .iter()
            .filter_map(|k| self.raw.get(k))
            .filter_map(|r| r.value.parse::<SecretRef>().ok())
            .filter(|r| r.scheme() == &secrets::FILE)
            .map(|r| r.locator().to_string())
            .collect()
    }

    /// Every file drover itself reads, by the origin of the key naming it (read from the
    /// raw values, before the keys are taken): the token files, the Vault token, the TLS
    /// pair, the CA bundles and the configuration file.
    fn own_paths(&self, secrets_dir: Option<&Path>) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for key in ["admin_token_ref", "resolver_token_ref"] {
            let Some(raw) = self.raw.get(key) else {
                continue;
            };
            let Ok(r) = raw.value.parse::<SecretRef>() else {
                continue;
            };
            if let (true, Some(dir)) = (r.scheme() == &secrets::FILE, secrets_dir) {
                out.push((raw.origin.clone(), dir.join(r.locator())));
            }
        }
        for key in [
            "vault_token_file",
            "tls_cert_file",
            "tls_key_file",
            "ca_file",
        ] {
            if let Some(raw) = self.raw.get(key) {
                out.push((raw.origin.clone(), PathBuf::from(raw.value.trim())));
            }
        }
        if let Some(file) = &self.config_file {
            out.push(("--config".to_string(), file.clone()));
        }
        out
    }

    /// Refuses a configuration in which one of drover's own files lies where a tenant's or
    /// a webhook's `file:` reference may read it, and prefixes that overlap (a tenant
    /// could then name a webhook's key).
    fn check_own_paths(
        &mut self,
        secrets_dir: Option<&Path>,
        scope: &secrets::RefScope,
        own: Vec<(String, PathBuf)>,
    ) {
        use secrets::Purpose::{Tenant, Webhook};
        let (tenants, webhooks) = (scope.file_prefix(Tenant), scope.file_prefix(Webhook));
        if tenants.starts_with(webhooks) || webhooks.starts_with(tenants) {
            self.problems.push(ConfigProblem {
                key: "file_secret_prefix, webhook_secret_prefix".into(),
                message: format!("{tenants} and {webhooks} overlap: a tenant's reference could name a webhook's key or back; give each its own directory"),
            });
        }
        let Some(dir) = secrets_dir else { return };
        let prefixes = [
            ("file_secret_prefix", tenants),
            ("webhook_secret_prefix", webhooks),
        ];
        let named: Vec<secrets::OwnPath<'_>> =
            own.iter().map(|(k, p)| (k.as_str(), p.clone())).collect();
        if let Some((key, prefix_key)) = secrets::own_files_inside(dir, &prefixes, &named) {
            let prefix = prefixes
                .iter()
                .find(|(k, _)| *k == prefix_key)
                .map_or("", |(_, p)| *p);
            self.problems.push(ConfigProblem {
                key: key.to_string(),
                message: format!(
                    "this file of drover's own lies under {prefix} in the secrets directory ({prefix_key}, {}), where {} references may read it; move it out of {prefix}",
                    env_name(prefix_key),
                    if prefix_key == "file_secret_prefix" { "tenant" } else { "webhook" },
                ),
            });
        }
    }

    fn cache(&mut self) -> CacheSettings {
        CacheSettings {
            secret_ttl: self.parsed("secret_ttl", parse_duration),
            secret_stale_for: self.parsed("secret_stale_for", parse_duration),
            secret_negative_ttl: self.parsed("secret_negative_ttl", parse_duration),
            tenant_ttl: self.parsed("tenant_cache_ttl", parse_duration),
            fresh_min_interval: self.parsed("resolve_fresh_min_interval", parse_duration),
            warm_limit: self.parsed("secret_warm_limit", |v| integer_in(v, 0, 1_000_000)),
        }
    }

    fn prometheus_url(&mut self) -> Option<String> {
        let r = self.take("prometheus_url")?;
        crate::waves::analysis::prometheus::check_url(&r.value)
            .map_err(|e| {
                self.problems.push(ConfigProblem {
                    key: r.origin.clone(),
                    message: e.to_string(),
                })
            })
            .ok()
    }

    fn events(&mut self, instance_id: &str) -> DeliverySettings {
        DeliverySettings {
            retry_backoff: self.parsed("webhook_retry_backoff", positive_duration),
            give_up_after: self.parsed("webhook_give_up_after", positive_duration),
            timeout: self.parsed("webhook_timeout", positive_duration),
            stream_max_clients: self.parsed("stream_max_clients", |v| integer_in(v, 1, 100_000)),
            stream_max_per_token: self
                .parsed("stream_max_per_token", |v| integer_in(v, 1, 100_000)),
            instance_id: instance_id.to_string(),
            secret_scope: secrets::RefScope::default(),
            allowed_networks: self
                .optional("webhook_allowed_networks", networks)
                .unwrap_or_default(),
        }
    }

    fn retention(&mut self) -> RetentionSettings {
        RetentionSettings {
            events: self.parsed("event_retention", parse_retention),
            webhook_delivered: self.parsed("webhook_delivered_retention", parse_retention),
            webhook_dead: self.parsed("webhook_dead_retention", parse_retention),
            evaluations: self.parsed("evaluation_retention", parse_retention),
            console_sessions: self.parsed("console_session_retention", parse_retention),
            schedule_fires: self.parsed("schedule_fire_retention", parse_retention),
            prune_interval: self.parsed("prune_interval", parse_retention),
        }
    }

    fn worker(&mut self, instance_id: &str, prometheus_url: &Option<String>) -> WorkerSettings {
        WorkerSettings {
            instance_id: instance_id.to_string(),
            lease: self.parsed("wave_lease", |v| duration_at_least(v, 1, "1s")),
            slots: self.parsed("worker_slots", |v| integer_in(v, 1, 1000)),
            lock_wait: self.parsed("lock_wait", parse_duration),
            retry_backoff: self.parsed("retry_backoff", parse_duration),
            record_batch_age: self.parsed("record_batch_age", parse_duration),
            fingerprint_migrated: self.parsed("drift_after_migration", boolean),
            prometheus_url: prometheus_url.clone(),
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

    fn vault(&mut self) -> Option<VaultConfig> {
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
        Some(VaultConfig {
            addr: addr.value,
            token,
            namespace,
            timeout,
        })
    }

    /// The raw value of a declared key, if set.
    pub(super) fn take(&mut self, key: &str) -> Option<Raw> {
        self.read.insert(keys::get(key).name);
        self.raw.remove(key)
    }

    /// The declared default of a key that has one.
    pub(super) fn default_of(key: &str) -> &'static str {
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
    pub(super) fn parsed<T>(&mut self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> T {
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
    pub(super) fn optional<T>(
        &mut self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
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

    /// The console's session lifetime, public origin and trusted proxies.
    fn console(&mut self, https_listener: bool) -> ConsoleSettings {
        ConsoleSettings {
            session_ttl: self.parsed("console_session_ttl", console_session_ttl),
            public_url: self.optional("public_url", PublicUrl::parse),
            trusted_proxies: self
                .optional("trusted_proxies", TrustedProxies::parse)
                .unwrap_or_default(),
            https_listener,
        }
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

/// An integer from `min` to `max`.
/// `true` or `false`.
fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn integer_in(v: &str, min: usize, max: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected an integer between {min} and {max}")),
    }
}

/// A byte limit: an integer of at least 1024.
fn at_least_1024(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n >= 1024 => Ok(n),
        _ => Err("expected an integer of at least 1024".into()),
    }
}

/// A duration of at least `secs` seconds (`shown` as written in the message).
fn duration_at_least(v: &str, secs: u64, shown: &str) -> Result<Duration, String> {
    match parse_duration(v) {
        Ok(d) if d >= Duration::from_secs(secs) => Ok(d),
        Ok(_) => Err(format!("must be at least {shown}")),
        Err(e) => Err(e),
    }
}

/// A duration from `min` to `max` seconds.
fn duration_between(v: &str, min: u64, max: u64, shown: &str) -> Result<Duration, String> {
    match parse_duration(v) {
        Ok(d) if d >= Duration::from_secs(min) && d <= Duration::from_secs(max) => Ok(d),
        Ok(_) => Err(format!("must be {shown}")),
        Err(e) => Err(e),
    }
}

/// A console session: from a minute to 30 days.
fn console_session_ttl(v: &str) -> Result<Duration, String> {
    match parse_duration(v) {
        Ok(d) if d >= Duration::from_secs(60) && d <= Duration::from_secs(30 * 86_400) => Ok(d),
        Ok(_) => Err("must be between 1m and 30d".into()),
        Err(e) => Err(e),
    }
}
