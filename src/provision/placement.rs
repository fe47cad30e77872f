//! Where a new tenant goes and what it is called: names from the `provision_*` templates,
//! a server chosen by labels and room, and the checks made before anything is written.

use uuid::Uuid;

use super::{servers, ProvisionError, Provisioner, Server};
use crate::registry::{Actor, DbIdent, NewTenant, Slug, Tenant};
use crate::secrets::SecretRef;

impl Provisioner {
    /// `POST /v1/tenants` with `provision: true`: fills what the request leaves out (display
    /// name, database and role names, secret reference from the templates; host and port
    /// from the server), places the tenant on a server and registers it in `provisioning`.
    /// Explicit fields win. Nothing is written when any check fails.
    pub async fn create(
        &self,
        request: &NewTenant,
        actor: &Actor,
    ) -> Result<Tenant, ProvisionError> {
        if !self.available() {
            return Err(ProvisionError::NotConfigured);
        }
        let slug = Slug::for_lookup(&request.slug)?;
        self.registry.check_slug_free(&slug).await?;
        let mut new = request.clone();
        new.fill_display_name();
        self.fill_names(&mut new, &slug)?;
        if let Some(name) = &new.server {
            self.named(name)?;
        }
        self.check_request(&new.db_secret_ref, None).await?;
        self.registry
            .create_placed(actor, |loads| {
                let server = match &new.server {
                    Some(name) => {
                        let s = self.named(name)?;
                        let load = loads.get(&s.name).copied().unwrap_or(0);
                        if !s.has_room(load) {
                            return Err(ProvisionError::NoServer {
                                labels: format!("server={name}"),
                                servers: format!(
                                    "{name} is full ({load} of {} tenants)",
                                    s.max_tenants.unwrap_or_default()
                                ),
                            });
                        }
                        s
                    }
                    None => servers::place(&self.servers, &new.labels, loads)?,
                };
                Ok(on_server(new, server))
            })
            .await
    }

    /// Database, role and secret reference from the templates, where not given.
    pub(super) fn fill_names(
        &self,
        new: &mut NewTenant,
        slug: &Slug,
    ) -> Result<(), ProvisionError> {
        let derive = |field: &'static str, template: &str| {
            let name = servers::render(template, slug.as_str());
            if name.len() > 63 {
                return Err(ProvisionError::Invalid {
                    field,
                    message: format!(
                        "{name:?} (from the template {template:?}) is {} bytes; PostgreSQL names are at most 63 and drover never shortens one: give {field} explicitly or use a shorter slug",
                        name.len()
                    ),
                });
            }
            DbIdent::parse(field, &name).map_err(ProvisionError::invalid)?;
            Ok(name)
        };
        if new.db_name.is_empty() {
            new.db_name = derive("db_name", &self.templates.db_name)?;
        }
        if new.db_user.is_empty() {
            new.db_user = derive("db_user", &self.templates.db_user)?;
        }
        if new.db_secret_ref.is_empty() {
            new.db_secret_ref = servers::render(&self.templates.secret_ref, slug.as_str());
        }
        Ok(())
    }

    pub(super) fn named(&self, name: &str) -> Result<&Server, ProvisionError> {
        self.servers
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ProvisionError::UnknownServer {
                name: name.to_string(),
                configured: self.configured_names(),
            })
    }

    fn configured_names(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The server a tenant lives on: the one it recorded; for tenants from before servers
    /// were recorded, the one with its host and port, or the only one.
    pub fn server_for(&self, t: &Tenant) -> Result<&Server, ProvisionError> {
        if let Some(name) = &t.server {
            return self.named(name);
        }
        if let Some(s) = self
            .servers
            .iter()
            .find(|s| s.host == t.db_host && s.port == t.db_port)
        {
            return Ok(s);
        }
        match self.servers.as_slice() {
            [only] => Ok(only),
            [] => Err(ProvisionError::NotConfigured),
            _ => Err(ProvisionError::UnknownServer {
                name: format!(
                    "(none recorded; no server has host {}:{})",
                    t.db_host, t.db_port
                ),
                configured: self.configured_names(),
            }),
        }
    }

    /// Checks, before anything is written, that a tenant with this secret ref can be
    /// provisioned here: an admin connection exists and the ref's backend can be written.
    pub async fn check_request(
        &self,
        secret_ref: &str,
        tenant: Option<Uuid>,
    ) -> Result<(), ProvisionError> {
        if !self.available() {
            return Err(ProvisionError::NotConfigured);
        }
        let r: SecretRef = secret_ref
            .parse()
            .map_err(
                |e: crate::secrets::SecretRefError| ProvisionError::Invalid {
                    field: "db_secret_ref",
                    message: e.to_string(),
                },
            )?;
        self.registry
            .scope()
            .check(&r)
            .map_err(|e| ProvisionError::Invalid {
                field: "db_secret_ref",
                message: e.to_string(),
            })?;
        if !r.scheme().writable {
            return Err(ProvisionError::Invalid {
                field: "db_secret_ref",
                message: format!(
                    "provisioning stores a generated password, so the reference must be {}, not {}:",
                    crate::secrets::scheme::listed(|s| s.writable, ":"),
                    r.scheme().name
                ),
            });
        }
        self.secrets
            .check_writable(&r)
            .map_err(|e| ProvisionError::Invalid {
                field: "db_secret_ref",
                message: e.to_string(),
            })?;
        let shared = self
            .registry
            .secret_ref_shared(secret_ref, tenant)
            .await
            .map_err(ProvisionError::Lookup)?;
        if shared {
            return Err(ProvisionError::Invalid {
                field: "db_secret_ref",
                message: "another live tenant uses this secret reference; a provisioned tenant needs its own".into(),
            });
        }
        Ok(())
    }
}

/// The request placed on `server`: its name recorded, host and port (and `sslmode`, when
/// the server sets one) filled where the request left them out.
pub(super) fn on_server(mut new: NewTenant, server: &Server) -> NewTenant {
    if new.db_host.is_empty() {
        new.db_host.clone_from(&server.host);
    }
    if new.db_port.is_none() {
        new.db_port = Some(server.port);
    }
    if let Some(mode) = server.sslmode {
        new.db_options
            .entry("sslmode".into())
            .or_insert_with(|| mode.as_str().to_string());
    }
    new.server = Some(server.name.clone());
    new
}
