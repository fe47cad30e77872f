//! The file's `[[provision_servers]]` tables → [`Server`]s: every key of every entry is
//! read, and every problem is named by where it came from
//! (`provision_servers[1].port (drover.toml)`).
//!
//! ```toml
//! [[provision_servers]]
//! name = "eu-1"                                   # recorded on the tenant (`server`)
//! url = "postgres://drover_admin:…@10.0.0.5/postgres?sslmode=verify-full"
//! host = "db-eu-1.internal"                       # what tenants connect to (default: url's)
//! port = 5432                                     # (default: url's)
//! labels = { region = "eu" }
//! max_tenants = 500                               # (default: no limit)
//! sslmode = "verify-full"                         # admin connection and tenants' DSNs
//! ca_file = "/etc/drover/eu-ca.pem"               # admin connection's CA bundle
//! ```
//!
//! An external provisioner (a job elsewhere creates the role and database when asked):
//!
//! ```toml
//! [[provision_servers]]
//! name = "k8s-eu"
//! kind = "external"                               # (default: "admin", the table above)
//! url = "https://provisioner.internal/drover"     # signed requests are POSTed here
//! secret_ref = "file:webhooks/provisioner"        # HMAC key, in the webhook scope
//! labels = { region = "eu" }
//! max_tenants = 500
//! timeout = "30m"                                 # to call back (default 30m)
//! callback_url = "https://drover.internal"        # (default: public_url, else listen)
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::ConfigProblem;
use crate::duration::parse_duration;
use crate::provision::servers::{External, Kind, PENDING_HOST};
use crate::provision::Server;
use crate::secrets::{self, SecretRef};
use crate::tls::{PgTarget, SslMode};

/// Keys of one `[[provision_servers]]` entry.
const SERVER_KEYS: &[&str] = &[
    "name",
    "url",
    "host",
    "port",
    "labels",
    "max_tenants",
    "sslmode",
    "ca_file",
    "kind",
    "secret_ref",
    "timeout",
    "callback_url",
];

/// The keys only an external server takes, and those only an admin server takes.
const EXTERNAL_ONLY: &[&str] = &["secret_ref", "timeout", "callback_url"];
const ADMIN_ONLY: &[&str] = &["sslmode", "ca_file"];

/// How long an external provisioner has to call back when `timeout` is not given.
pub const DEFAULT_EXTERNAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A server name: like a slug, `_` allowed (it is stored and shown, never quoted).
fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && edge(&b[0])
        && edge(&b[b.len() - 1])
        && b.iter().all(|c| edge(c) || *c == b'-' || *c == b'_')
}

/// The tenant-facing host and port of an admin URL.
pub(super) fn url_host_port(target: &PgTarget) -> Option<(String, i32)> {
    let host = match target.config.get_hosts().first()? {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.to_string_lossy().into_owned(),
    };
    let port = target.config.get_ports().first().copied().unwrap_or(5432);
    Some((host, i32::from(port)))
}

pub(super) fn admin_target(url: &SecretString, origin: &str) -> Result<PgTarget, ConfigProblem> {
    let mut target = PgTarget::parse(url.expose_secret()).map_err(|e| ConfigProblem {
        key: origin.to_string(),
        message: format!("not a valid PostgreSQL connection URL: {e}"),
    })?;
    if target.config.get_application_name().is_none() {
        target.config.application_name("drover");
    }
    if target.config.get_connect_timeout().is_none() {
        target.config.connect_timeout(Duration::from_secs(5));
    }
    Ok(target)
}

/// Reads the `provision_servers` array of the config file; every problem is named by
/// `provision_servers[i].key (file)`.
pub(super) fn parse_servers(
    value: &toml::Value,
    file: &str,
    scope: &secrets::RefScope,
) -> (Vec<Server>, Vec<ConfigProblem>) {
    let mut servers: Vec<Server> = Vec::new();
    let mut problems = Vec::new();
    let Some(entries) = value.as_array() else {
        problems.push(ConfigProblem {
            key: format!("provision_servers ({file})"),
            message: "expected [[provision_servers]] tables".into(),
        });
        return (servers, problems);
    };
    for (i, entry) in entries.iter().enumerate() {
        let at = |key: &str| format!("provision_servers[{i}].{key} ({file})");
        let Some(table) = entry.as_table() else {
            problems.push(ConfigProblem {
                key: format!("provision_servers[{i}] ({file})"),
                message: "expected a table".into(),
            });
            continue;
        };
        let parsed = if table.get("kind").and_then(toml::Value::as_str) == Some("external") {
            parse_external(table, &at, scope)
        } else {
            parse_one(table, &at)
        };
        match parsed {
            Ok(s) if servers.iter().any(|o| o.name == s.name) => problems.push(ConfigProblem {
                key: at("name"),
                message: format!("server {:?} is listed twice", s.name),
            }),
            Ok(s) => servers.push(s),
            Err(mut p) => problems.append(&mut p),
        }
    }
    (servers, problems)
}

/// One server from its table: every key is read (so every problem is reported), then
/// the host and port default to the URL's.
fn parse_one(
    table: &toml::Table,
    at: &dyn Fn(&str) -> String,
) -> Result<Server, Vec<ConfigProblem>> {
    let mut e = Entry {
        table,
        at,
        problems: Vec::new(),
    };
    e.refuse_unknown_keys();
    e.refuse_keys_of_the_other_kind(EXTERNAL_ONLY, "an admin server");
    let name = e.name();
    let admin = e.admin();
    let sslmode = e.sslmode();
    let ca_file = e.text("ca_file").map(PathBuf::from);
    let labels = e.labels();
    let max_tenants = e.max_tenants();
    let port = e.port();
    let Some(mut admin) = admin else {
        return Err(e.problems);
    };
    let from_url = url_host_port(&admin);
    let host = e
        .text("host")
        .map(str::to_string)
        .or_else(|| from_url.as_ref().map(|(h, _)| h.clone()));
    let port = port.or(from_url.map(|(_, p)| p)).unwrap_or(5432);
    let Some(host) = host else {
        e.problem("host", "required when the url names no host");
        return Err(e.problems);
    };
    if !e.problems.is_empty() {
        return Err(e.problems);
    }
    if let Some(mode) = sslmode {
        admin.sslmode = mode;
    }
    if ca_file.is_some() {
        admin.root_cert.clone_from(&ca_file);
    }
    Ok(Server {
        name,
        kind: Kind::Admin(Box::new(admin)),
        host,
        port,
        labels,
        max_tenants,
        sslmode,
        ca_file,
    })
}

/// One external server from its table. `callback_url` left out is filled later from
/// `public_url` or `listen` ([`fill_callback_bases`]).
fn parse_external(
    table: &toml::Table,
    at: &dyn Fn(&str) -> String,
    scope: &secrets::RefScope,
) -> Result<Server, Vec<ConfigProblem>> {
    let mut e = Entry {
        table,
        at,
        problems: Vec::new(),
    };
    e.refuse_unknown_keys();
    e.refuse_keys_of_the_other_kind(ADMIN_ONLY, "an external server");
    let name = e.name();
    let url = e.provisioner_url();
    let secret_ref = e.hmac_key(scope);
    let timeout = match e.text("timeout").map(parse_duration) {
        None => DEFAULT_EXTERNAL_TIMEOUT,
        Some(Ok(d)) if d >= Duration::from_secs(1) => d,
        Some(Ok(_)) => {
            e.problem("timeout", "must be at least 1s");
            DEFAULT_EXTERNAL_TIMEOUT
        }
        Some(Err(m)) => {
            e.problem("timeout", m);
            DEFAULT_EXTERNAL_TIMEOUT
        }
    };
    let callback_base = match e.text("callback_url").map(crate::origin::PublicUrl::parse) {
        None => String::new(),
        Some(Ok(u)) => u.origin().to_string(),
        Some(Err(m)) => {
            e.problem("callback_url", m);
            String::new()
        }
    };
    let labels = e.labels();
    let max_tenants = e.max_tenants();
    let port = e.port();
    let host = e.text("host").unwrap_or(PENDING_HOST).to_string();
    let (Some(url), Some(secret_ref)) = (url, secret_ref) else {
        return Err(e.problems);
    };
    if !e.problems.is_empty() {
        return Err(e.problems);
    }
    Ok(Server {
        name,
        kind: Kind::External(External {
            url,
            secret_ref,
            timeout,
            callback_base,
        }),
        host,
        port: port.unwrap_or(5432),
        labels,
        max_tenants,
        sslmode: None,
        ca_file: None,
    })
}

/// One `[[provision_servers]]` table being read, with the problems found so far.
struct Entry<'a> {
    table: &'a toml::Table,
    /// `provision_servers[i].key (file)` for a key.
    at: &'a dyn Fn(&str) -> String,
    problems: Vec<ConfigProblem>,
}

impl<'a> Entry<'a> {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            key: (self.at)(key),
            message: message.into(),
        });
    }

    fn text(&self, key: &str) -> Option<&'a str> {
        self.table.get(key).and_then(toml::Value::as_str)
    }

    fn refuse_unknown_keys(&mut self) {
        let table = self.table;
        for key in table.keys() {
            if !SERVER_KEYS.contains(&key.as_str()) {
                self.problem(
                    key,
                    format!("unknown key; known keys: {}", SERVER_KEYS.join(", ")),
                );
            }
        }
    }

    fn refuse_keys_of_the_other_kind(&mut self, keys: &[&str], kind: &str) {
        for key in keys {
            if self.table.contains_key(*key) {
                self.problem(key, format!("not a key of {kind} (see kind)"));
            }
        }
        match self.text("kind") {
            None | Some("admin" | "external") => {}
            Some(other) => self.problem(
                "kind",
                format!("expected \"admin\" or \"external\", not {other:?}"),
            ),
        }
    }

    /// An external server's URL: http(s), a host, no credentials (they would be shown
    /// wherever the configuration is).
    fn provisioner_url(&mut self) -> Option<String> {
        let Some(u) = self.text("url") else {
            self.problem("url", "required: where drover POSTs the signed requests");
            return None;
        };
        let problem = match reqwest::Url::parse(u) {
            Err(e) => Some(format!("not a URL: {e}")),
            Ok(p) if !matches!(p.scheme(), "http" | "https") => {
                Some("must be an http:// or https:// URL".into())
            }
            Ok(p) if p.host_str().is_none_or(str::is_empty) => Some("needs a host".into()),
            Ok(p) if !p.username().is_empty() || p.password().is_some() => Some(
                "must not carry credentials; the provisioner authenticates drover by the signature"
                    .into(),
            ),
            Ok(_) => None,
        };
        match problem {
            Some(m) => {
                self.problem("url", m);
                None
            }
            None => Some(u.to_string()),
        }
    }

    /// The HMAC key reference: in the webhook scope, as a webhook's.
    fn hmac_key(&mut self, scope: &secrets::RefScope) -> Option<SecretRef> {
        let Some(v) = self.text("secret_ref") else {
            self.problem(
                "secret_ref",
                "required: the reference of the HMAC key requests are signed with",
            );
            return None;
        };
        let checked = v
            .parse::<SecretRef>()
            .map_err(|e| e.to_string())
            .and_then(|r| {
                scope
                    .check_webhook(&r)
                    .map(|()| r)
                    .map_err(|e| e.to_string())
            });
        match checked {
            Ok(r) => Some(r),
            Err(m) => {
                self.problem("secret_ref", m);
                None
            }
        }
    }

    fn name(&mut self) -> String {
        let name = self.text("name").unwrap_or_default().to_string();
        if !valid_name(&name) {
            self.problem("name", "required: 1-63 characters of a-z, 0-9, '-' and '_', starting and ending with a letter or digit");
        }
        name
    }

    fn admin(&mut self) -> Option<PgTarget> {
        let Some(u) = self.text("url") else {
            self.problem(
                "url",
                "required: the admin connection (a role with CREATEDB and CREATEROLE)",
            );
            return None;
        };
        match admin_target(&SecretString::from(u.to_string()), &(self.at)("url")) {
            Ok(t) => Some(t),
            Err(p) => {
                self.problem("url", p.message);
                None
            }
        }
    }

    fn sslmode(&mut self) -> Option<SslMode> {
        match self.text("sslmode")?.parse::<SslMode>() {
            Ok(m) => Some(m),
            Err(e) => {
                self.problem("sslmode", e.to_string());
                None
            }
        }
    }

    fn labels(&mut self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        match self.table.get("labels") {
            None => {}
            Some(toml::Value::Table(t)) => {
                for (k, v) in t {
                    match v.as_str() {
                        Some(v) => {
                            labels.insert(k.clone(), v.to_string());
                        }
                        None => self.problem("labels", format!("label {k:?}: expected a string")),
                    }
                }
                if let Err(e) = crate::registry::validate_labels(&labels) {
                    self.problem("labels", e.to_string());
                }
            }
            Some(_) => self.problem(
                "labels",
                "expected a table of strings, e.g. { region = \"eu\" }",
            ),
        }
        labels
    }

    fn max_tenants(&mut self) -> Option<i64> {
        match self.table.get("max_tenants")? {
            toml::Value::Integer(n) if *n >= 0 => Some(*n),
            _ => {
                self.problem("max_tenants", "expected a whole number of at least 0");
                None
            }
        }
    }

    fn port(&mut self) -> Option<i32> {
        match self.table.get("port")? {
            toml::Value::Integer(n) if (1..=65535).contains(n) => Some(*n as i32),
            _ => {
                self.problem("port", "expected a port between 1 and 65535");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_entries_are_validated_with_their_position() {
        let value: toml::Table = toml::from_str(
            r#"
            [[provision_servers]]
            name = "eu-1"
            url = "postgres://a@db-eu/postgres"
            labels = { region = "eu" }
            max_tenants = 10
            [[provision_servers]]
            name = "Bad Name"
            port = 0
            "#,
        )
        .unwrap();

        let (servers, problems) = parse_servers(
            &value["provision_servers"],
            "drover.toml",
            &secrets::RefScope::default(),
        );

        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].host, "db-eu");
        assert_eq!(servers[0].port, 5432);
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(
            keys.contains(&"provision_servers[1].name (drover.toml)"),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"provision_servers[1].url (drover.toml)"),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"provision_servers[1].port (drover.toml)"),
            "{keys:?}"
        );
    }

    fn external(extra: &str) -> (Vec<Server>, Vec<ConfigProblem>) {
        let value: toml::Table = toml::from_str(&format!(
            "[[provision_servers]]\nname = \"k8s\"\nkind = \"external\"\n{extra}"
        ))
        .unwrap();
        let scope = secrets::RefScope::default().with_file_prefixes(
            secrets::parse_file_prefix("tenants/").unwrap(),
            secrets::parse_file_prefix("webhooks/").unwrap(),
        );
        parse_servers(&value["provision_servers"], "drover.toml", &scope)
    }

    #[test]
    fn an_external_server_has_a_url_a_key_in_the_webhook_scope_and_a_thirty_minute_timeout() {
        let (servers, problems) = external(
            "url = \"https://prov.example.com/x\"\nsecret_ref = \"file:webhooks/prov\"\nlabels = { region = \"eu\" }",
        );

        assert!(problems.is_empty(), "{problems:?}");
        let e = servers[0].external().expect("external");
        assert_eq!(e.url, "https://prov.example.com/x");
        assert_eq!(e.secret_ref.to_string(), "file:webhooks/prov");
        assert_eq!(e.timeout, DEFAULT_EXTERNAL_TIMEOUT);
        assert_eq!(servers[0].host, PENDING_HOST);
        assert!(servers[0].admin().is_none());
    }

    #[test]
    fn an_external_server_refuses_admin_keys_a_key_outside_the_webhook_scope_and_credentials() {
        let (servers, problems) = external(
            "url = \"https://u:p@prov.example.com/\"\nsecret_ref = \"file:tenants/prov\"\nsslmode = \"require\"\ntimeout = \"0s\"",
        );

        assert!(servers.is_empty());
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in ["url", "secret_ref", "sslmode", "timeout"] {
            let at = format!("provision_servers[0].{key} (drover.toml)");
            assert!(keys.contains(&at.as_str()), "{key}: {keys:?}");
        }
    }

    #[test]
    fn an_admin_server_refuses_external_keys_and_an_unknown_kind_is_named() {
        let value: toml::Table = toml::from_str(
            "[[provision_servers]]\nname = \"a\"\nurl = \"postgres://a@h/postgres\"\ntimeout = \"5m\"\n\
             [[provision_servers]]\nname = \"b\"\nkind = \"terraform\"\nurl = \"postgres://a@h/postgres\"\n",
        )
        .unwrap();

        let (_, problems) = parse_servers(
            &value["provision_servers"],
            "drover.toml",
            &secrets::RefScope::default(),
        );

        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(
            keys.contains(&"provision_servers[0].timeout (drover.toml)"),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"provision_servers[1].kind (drover.toml)"),
            "{keys:?}"
        );
    }
}
