//! The provisioning settings: `DROVER_PROVISION_URL` or the file's `[[provision_servers]]`
//! tables (read by `servers.rs`) → [`Server`]s, the `provision_*` name templates, and the
//! external servers' callback origin. Every problem is named by where it came from
//! (`provision_servers[1].port (drover.toml)`), like the other keys'.
//!
//! `DROVER_PROVISION_URL` alone is one server named `default`, with its URL's host and
//! port and no labels.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use super::build::Builder;
use super::servers::{admin_target, parse_servers, url_host_port};
use super::ConfigProblem;
use crate::duration::parse_duration;
use crate::provision::servers::{render, Kind, DEFAULT_SERVER};
use crate::provision::{ProvisionSettings, Server};
use crate::secrets::{self, SecretRef};

impl Builder {
    /// The provisioning settings but `lock_wait` (zero until `build` sets it, once the wave
    /// keys are read). The ref scope, CA file and instance id are the rest of the
    /// configuration's, lent here.
    pub(super) fn provision(
        &mut self,
        scope: &secrets::RefScope,
        ca_file: Option<PathBuf>,
        instance_id: String,
    ) -> ProvisionSettings {
        let servers = self.servers(scope);
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
        ProvisionSettings {
            servers,
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
            ca_file,
            instance_id,
            lock_wait: Duration::ZERO,
        }
    }

    /// `DROVER_PROVISION_URL` or the file's `[[provision_servers]]`, not both.
    fn servers(&mut self, scope: &secrets::RefScope) -> Vec<Server> {
        let url = self.take("provision_url");
        let mut list = Vec::new();
        match (url, self.servers.take()) {
            (Some(u), Some((_, file))) => self.problems.push(ConfigProblem {
                key: u.origin,
                message: format!(
                    "set either DROVER_PROVISION_URL or [[provision_servers]] (in {file}), not both"
                ),
            }),
            (Some(u), None) => match default_server(&SecretString::from(u.value), &u.origin) {
                Ok(s) => list.push(s),
                Err(p) => self.problems.push(p),
            },
            (None, Some((value, file))) => {
                let (found, problems) = parse_servers(&value, &file, scope);
                list = found;
                self.problems.extend(problems);
            }
            (None, None) => {}
        }
        list
    }

    /// A name template: it must name the tenant (`{slug}` or `{ident}`), and what it makes
    /// of a short slug must pass `check`.
    fn template(&mut self, key: &str, check: impl Fn(&str) -> Result<(), String>) -> String {
        let default = Self::default_of(key);
        let Some(r) = self.take(key) else {
            return default.to_string();
        };
        let sample = render(&r.value, "acme-1");
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
}

impl Builder {
    /// Gives every external server without a `callback_url` the origin drover is reached at:
    /// `public_url`, else the listen address (a problem when that is a wildcard address,
    /// which no job can call).
    pub(super) fn fill_callback_bases(
        &mut self,
        servers: &mut [Server],
        public_url: Option<&crate::origin::PublicUrl>,
        listen: std::net::SocketAddr,
        https: bool,
    ) {
        for s in servers {
            let Kind::External(e) = &mut s.kind else {
                continue;
            };
            if !e.callback_base.is_empty() {
                continue;
            }
            if let Some(u) = public_url {
                e.callback_base = u.origin().to_string();
            } else if listen.ip().is_unspecified() {
                self.problems.push(ConfigProblem {
                key: format!("provision_servers.{}.callback_url", s.name),
                message: format!(
                    "required: the origin the provisioner reaches drover at (e.g. https://drover.internal);                      neither public_url is set nor is listen ({listen}) an address a job could call"
                ),
            });
            } else {
                let scheme = if https { "https" } else { "http" };
                e.callback_base = format!("{scheme}://{listen}");
            }
        }
    }
}

/// `DROVER_PROVISION_URL` as the one server `default`.
fn default_server(url: &SecretString, origin: &str) -> Result<Server, ConfigProblem> {
    let admin = admin_target(url, origin)?;
    let (host, port) = url_host_port(&admin).ok_or_else(|| ConfigProblem {
        key: origin.to_string(),
        message: "the URL names no host".into(),
    })?;
    Ok(Server {
        name: DEFAULT_SERVER.into(),
        kind: Kind::Admin(Box::new(admin)),
        host,
        port,
        labels: BTreeMap::new(),
        max_tenants: None,
        sslmode: None,
        ca_file: None,
    })
}
