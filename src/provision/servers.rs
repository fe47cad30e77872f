//! Provisioning servers: the PostgreSQL servers drover creates tenant databases on, and
//! where a new tenant goes. The configuration reads them (`[[provision_servers]]` tables,
//! or `DROVER_PROVISION_URL` alone as one server named [`DEFAULT_SERVER`]) into [`Server`]s;
//! see `config/provision.rs`.
//!
//! Placement: a server fits a tenant when every label the server declares that the tenant
//! also has is equal (`region=eu` takes `region=eu` tenants and tenants without `region`),
//! and it has room (`max_tenants`). Of those, the one with the fewest live tenants wins
//! (ties: the first in the file). External servers ([`Kind::External`]) are placed the same
//! way; only what happens once a tenant is placed differs (see `external/`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::ProvisionError;
use crate::secrets::SecretRef;
use crate::tls::{PgTarget, SslMode};

/// The name of the server `DROVER_PROVISION_URL` alone configures.
pub const DEFAULT_SERVER: &str = "default";

/// One provisioning server, validated. `Debug` never shows the URL.
#[derive(Clone)]
pub struct Server {
    /// Its name, recorded on the tenants placed there.
    pub name: String,
    /// Who creates the tenants' roles and databases there.
    pub kind: Kind,
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

/// How tenants are made on a server.
#[derive(Clone)]
pub enum Kind {
    /// drover logs in as an admin role (CREATEDB and CREATEROLE), with `sslmode`/`ca_file`
    /// applied, and creates them itself.
    Admin(Box<PgTarget>),
    /// A job behind a URL creates them when asked and reports back (`kind = "external"`).
    External(External),
}

/// An external provisioner: where requests go and how they are signed.
#[derive(Debug, Clone)]
pub struct External {
    /// Where the signed requests are POSTed.
    pub url: String,
    /// The HMAC key the requests are signed with (as a webhook's `secret_ref`); the
    /// callback tokens are derived from it too.
    pub secret_ref: SecretRef,
    /// How long the job has to call back (the callback token's lifetime).
    pub timeout: Duration,
    /// The origin the job reaches drover at (`https://drover.internal`): the callback URL
    /// is this plus `/v1/tenants/{slug}/provisioning`.
    pub callback_base: String,
}

/// The tenant host of an external server that names none: a reserved name (RFC 2606)
/// that never resolves, until the job reports the real one.
pub const PENDING_HOST: &str = "pending.invalid";

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("labels", &self.labels)
            .field("max_tenants", &self.max_tenants)
            .field("external", &self.external().map(|e| &e.url))
            .finish_non_exhaustive()
    }
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

    /// The admin connection, for a server drover provisions on itself.
    pub fn admin(&self) -> Option<&PgTarget> {
        match &self.kind {
            Kind::Admin(t) => Some(t.as_ref()),
            Kind::External(_) => None,
        }
    }

    /// The provisioner, for an external server.
    pub fn external(&self) -> Option<&External> {
        match &self.kind {
            Kind::External(e) => Some(e),
            Kind::Admin(_) => None,
        }
    }

    /// Connects to the admin connection (an external server has none).
    pub async fn connect(
        &self,
        default_ca: Option<&std::path::Path>,
    ) -> Result<tokio_postgres::Client, ProvisionError> {
        let Some(admin) = self.admin() else {
            return Err(ProvisionError::Config(format!(
                "server {:?} is an external provisioner: drover has no admin connection to it",
                self.name
            )));
        };
        admin
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
        Server {
            name: name.into(),
            kind: Kind::Admin(Box::new(
                PgTarget::parse("postgres://a@h/postgres").unwrap(),
            )),
            host: "h".into(),
            port: 5432,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            max_tenants: max,
            sslmode: None,
            ca_file: None,
        }
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
}
