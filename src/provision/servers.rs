//! Provisioning servers (`[[provision_servers]]`, README.md#provisioning): the PostgreSQL
//! servers drover creates tenant databases on, how they are read from the configuration,
//! and where a new tenant goes.
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
//! `DROVER_PROVISION_URL` alone is one server named `default`, with its URL's host and
//! port and no labels.
//!
//! Placement: a server fits a tenant when every label the server declares that the tenant
//! also has is equal (`region=eu` takes `region=eu` tenants and tenants without `region`),
//! and it has room (`max_tenants`). Of those, the one with the fewest live tenants wins
//! (ties: the first in the file).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::ProvisionError;
use crate::config::ConfigProblem;
use crate::tls::{PgTarget, SslMode};

/// The name of the server `DROVER_PROVISION_URL` alone configures.
pub const DEFAULT_SERVER: &str = "default";

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
];

/// One provisioning server, validated. `Debug` never shows the URL.
#[derive(Clone)]
pub struct Server {
    /// Its name, recorded on the tenants placed there.
    pub name: String,
    /// The admin connection (CREATEDB and CREATEROLE), with `sslmode`/`ca_file` applied.
    pub admin: PgTarget,
    /// The host tenants connect to.
    pub host: String,
    /// The port tenants connect to.
    pub port: i32,
    /// Matched against the tenant's labels.
    pub labels: BTreeMap<String, String>,
    /// Most live tenants placed here; `None`: no limit.
    pub max_tenants: Option<i64>,
    /// `sslmode` given for this server: also stored in its tenants' `db_options`.
    pub sslmode: Option<SslMode>,
    /// CA bundle for the admin connection (else `DROVER_CA_FILE`).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("labels", &self.labels)
            .field("max_tenants", &self.max_tenants)
            .finish_non_exhaustive()
    }
}

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
fn url_host_port(target: &PgTarget) -> Option<(String, i32)> {
    let host = match target.config.get_hosts().first()? {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.to_string_lossy().into_owned(),
    };
    let port = target.config.get_ports().first().copied().unwrap_or(5432);
    Some((host, i32::from(port)))
}

fn admin_target(url: &SecretString, origin: &str) -> Result<PgTarget, ConfigProblem> {
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

/// `DROVER_PROVISION_URL` as the one server `default`.
pub fn default_server(url: &SecretString, origin: &str) -> Result<Server, ConfigProblem> {
    let admin = admin_target(url, origin)?;
    let (host, port) = url_host_port(&admin).ok_or_else(|| ConfigProblem {
        key: origin.to_string(),
        message: "the URL names no host".into(),
    })?;
    Ok(Server {
        name: DEFAULT_SERVER.into(),
        admin,
        host,
        port,
        labels: BTreeMap::new(),
        max_tenants: None,
        sslmode: None,
        ca_file: None,
    })
}

/// Reads the `provision_servers` array of the config file; every problem is named by
/// `provision_servers[i].key (file)`.
pub fn parse_servers(value: &toml::Value, file: &str) -> (Vec<Server>, Vec<ConfigProblem>) {
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
        match parse_one(table, &at) {
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

fn parse_one(
    table: &toml::Table,
    at: &dyn Fn(&str) -> String,
) -> Result<Server, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(ConfigProblem {
            key: at(key),
            message,
        })
    };
    for key in table.keys() {
        if !SERVER_KEYS.contains(&key.as_str()) {
            problem(
                key,
                format!("unknown key; known keys: {}", SERVER_KEYS.join(", ")),
            );
        }
    }
    let text = |key: &str| table.get(key).and_then(toml::Value::as_str);
    let name = text("name").unwrap_or_default().to_string();
    if !valid_name(&name) {
        problem("name", "required: 1-63 characters of a-z, 0-9, '-' and '_', starting and ending with a letter or digit".into());
    }
    let admin = match text("url") {
        None => {
            problem(
                "url",
                "required: the admin connection (a role with CREATEDB and CREATEROLE)".into(),
            );
            None
        }
        Some(u) => match admin_target(&SecretString::from(u.to_string()), &at("url")) {
            Ok(t) => Some(t),
            Err(p) => {
                problem("url", p.message);
                None
            }
        },
    };
    let sslmode = match text("sslmode") {
        None => None,
        Some(m) => match m.parse::<SslMode>() {
            Ok(m) => Some(m),
            Err(e) => {
                problem("sslmode", e.to_string());
                None
            }
        },
    };
    let ca_file = text("ca_file").map(PathBuf::from);
    let labels = match table.get("labels") {
        None => BTreeMap::new(),
        Some(toml::Value::Table(t)) => {
            let mut labels = BTreeMap::new();
            for (k, v) in t {
                match v.as_str() {
                    Some(v) => {
                        labels.insert(k.clone(), v.to_string());
                    }
                    None => problem("labels", format!("label {k:?}: expected a string")),
                }
            }
            if let Err(e) = crate::registry::validate_labels(&labels) {
                problem("labels", e.to_string());
            }
            labels
        }
        Some(_) => {
            problem(
                "labels",
                "expected a table of strings, e.g. { region = \"eu\" }".into(),
            );
            BTreeMap::new()
        }
    };
    let max_tenants = match table.get("max_tenants") {
        None => None,
        Some(toml::Value::Integer(n)) if *n >= 0 => Some(*n),
        Some(_) => {
            problem(
                "max_tenants",
                "expected a whole number of at least 0".into(),
            );
            None
        }
    };
    let port = match table.get("port") {
        None => None,
        Some(toml::Value::Integer(n)) if (1..=65535).contains(n) => Some(*n as i32),
        Some(_) => {
            problem("port", "expected a port between 1 and 65535".into());
            None
        }
    };
    let Some(mut admin) = admin else {
        return Err(problems);
    };
    let from_url = url_host_port(&admin);
    let host = text("host")
        .map(str::to_string)
        .or_else(|| from_url.as_ref().map(|(h, _)| h.clone()));
    let port = port.or(from_url.map(|(_, p)| p)).unwrap_or(5432);
    let Some(host) = host else {
        problem("host", "required when the url names no host".into());
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    if let Some(mode) = sslmode {
        admin.sslmode = mode;
    }
    if ca_file.is_some() {
        admin.root_cert.clone_from(&ca_file);
    }
    Ok(Server {
        name,
        admin,
        host,
        port,
        labels,
        max_tenants,
        sslmode,
        ca_file,
    })
}

impl Server {
    /// Whether this server takes a tenant with `labels`: every label both declare agrees.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels
            .iter()
            .all(|(k, v)| labels.get(k).is_none_or(|t| t == v))
    }

    /// Whether it has room for one more tenant.
    pub fn has_room(&self, load: i64) -> bool {
        self.max_tenants.is_none_or(|max| load < max)
    }

    /// Connects to the admin connection.
    pub async fn connect(
        &self,
        default_ca: Option<&std::path::Path>,
    ) -> Result<tokio_postgres::Client, ProvisionError> {
        self.admin
            .connect(self.ca_file.as_deref().or(default_ca))
            .await
            .map_err(|e| ProvisionError::Admin {
                server: self.name.clone(),
                message: e.to_string(),
            })
    }
}

/// The server a new tenant with `labels` goes to: the least-loaded match with room.
pub fn place<'a>(
    servers: &'a [Server],
    labels: &BTreeMap<String, String>,
    loads: &BTreeMap<String, i64>,
) -> Result<&'a Server, ProvisionError> {
    let load = |s: &Server| loads.get(&s.name).copied().unwrap_or(0);
    servers
        .iter()
        .filter(|s| s.matches(labels) && s.has_room(load(s)))
        .min_by_key(|s| load(s))
        .ok_or_else(|| ProvisionError::NoServer {
            labels: labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            servers: servers
                .iter()
                .map(|s| {
                    let labels: Vec<_> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let max = s.max_tenants.map_or("no limit".into(), |m| m.to_string());
                    format!("{} [{}] {}/{max}", s.name, labels.join(","), load(s))
                })
                .collect::<Vec<_>>()
                .join("; "),
        })
}

/// A name template (`t_{ident}`, `file:tenants/{slug}`) for one slug: `{slug}` is the slug,
/// `{ident}` the slug with `-` turned into `_`.
pub fn render(template: &str, slug: &str) -> String {
    template
        .replace("{slug}", slug)
        .replace("{ident}", &slug.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, labels: &[(&str, &str)], max: Option<i64>) -> Server {
        let mut s = default_server(
            &SecretString::from("postgres://a@h/postgres".to_string()),
            "test",
        )
        .unwrap();
        s.name = name.into();
        s.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s.max_tenants = max;
        s
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn placement_takes_the_least_loaded_matching_server_with_room() {
        let servers = [
            server("eu-1", &[("region", "eu")], Some(2)),
            server("eu-2", &[("region", "eu")], None),
            server("us-1", &[("region", "us")], None),
        ];
        let loads = BTreeMap::from([("eu-1".to_string(), 0), ("eu-2".to_string(), 1)]);

        let eu = place(&servers, &labels(&[("region", "eu")]), &loads).unwrap();
        let any = place(&servers, &labels(&[]), &loads).unwrap();
        let full = BTreeMap::from([("eu-1".to_string(), 2), ("eu-2".to_string(), 5)]);
        let eu_full = place(&servers, &labels(&[("region", "eu")]), &full).unwrap();

        assert_eq!(eu.name, "eu-1");
        assert_eq!(any.name, "eu-1");
        assert_eq!(eu_full.name, "eu-2");
    }

    #[test]
    fn no_match_names_the_labels_and_the_servers() {
        let servers = [server("eu-1", &[("region", "eu")], None)];

        let err = place(&servers, &labels(&[("region", "ap")]), &BTreeMap::new()).unwrap_err();

        let text = err.to_string();
        assert!(text.contains("region=ap"), "{text}");
        assert!(text.contains("eu-1 [region=eu]"), "{text}");
    }

    #[test]
    fn templates_fill_slug_and_identifier() {
        assert_eq!(render("t_{ident}", "acme-corp"), "t_acme_corp");
        assert_eq!(
            render("file:tenants/{slug}", "acme-corp"),
            "file:tenants/acme-corp"
        );
    }

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

        let (servers, problems) = parse_servers(&value["provision_servers"], "drover.toml");

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
}
