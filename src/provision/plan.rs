//! Validation-only creation (`POST /v1/tenants?dry_run=true`, `drover tenants create
//! --dry-run`): the names, the placement, the checks and the steps a create would take,
//! computed and returned with nothing written anywhere: no control-DB row, no secret, no
//! role or database. Reads only: the registry (slug and names free, loads per server), the
//! migration catalog, and the catalogs of the chosen server (role and database absent).
//!
//! A check that fails answers with the error the real request would give (422, 409, 501,
//! 502); a plan is only returned when every check passed.

use serde::Serialize;
use uuid::Uuid;

use super::{admin, servers, ProvisionError, Provisioner};
use crate::registry::{DbIdent, NewTenant, Registry, Slug};

/// What a create would do. Nothing was written.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatePlan {
    /// Always true: this is a plan, not a tenant.
    pub dry_run: bool,
    /// The tenant as it would be registered: names from the templates, host and port from
    /// the server.
    pub tenant: NewTenant,
    /// The provisioning server it would be placed on (`provision: true`).
    #[schema(required)]
    pub server: Option<String>,
    /// Its portal URL (explicit, or from `portal_url_template`).
    #[schema(required)]
    pub portal_url: Option<String>,
    /// The checks made, each passed.
    pub checks: Vec<String>,
    /// The steps the real request would take, in order.
    pub steps: Vec<String>,
}

/// The plan of a create without provisioning: registry checks only.
pub async fn register_plan(
    registry: &Registry,
    request: &NewTenant,
) -> Result<CreatePlan, ProvisionError> {
    let mut new = request.clone();
    new.fill_display_name();
    let mut checks = registry.check_new(&new).await?;
    checks.insert(0, "fields are valid".into());
    let status = new
        .status
        .map_or("provisioning".to_string(), |s| s.to_string());
    Ok(CreatePlan {
        dry_run: true,
        portal_url: registry.portal_url_of(&new),
        server: None,
        steps: vec![format!(
            "register tenant {:?} as {status} and record its `created` event",
            new.slug.to_ascii_lowercase()
        )],
        tenant: new,
        checks,
    })
}

impl Provisioner {
    /// The plan of `POST /v1/tenants {provision: true}`: every check [`Provisioner::create`]
    /// and the job make before changing anything, and the steps after them.
    pub async fn plan(&self, request: &NewTenant) -> Result<CreatePlan, ProvisionError> {
        if !self.available() {
            return Err(ProvisionError::NotConfigured);
        }
        let slug = Slug::for_lookup(&request.slug)?;
        let mut new = request.clone();
        new.fill_display_name();
        self.fill_names(&mut new, &slug)?;
        self.check_request(&new.db_secret_ref, None).await?;
        let loads = self.registry.server_loads().await?;
        let server = match &new.server {
            Some(name) => self.named(name)?,
            None => servers::place(&self.servers, &new.labels, &loads)?,
        };
        let load = loads.get(&server.name).copied().unwrap_or(0);
        if !server.has_room(load) {
            return Err(ProvisionError::NoServer {
                labels: format!("server={}", server.name),
                servers: format!("{} is full ({load} tenants)", server.name),
            });
        }
        let new = super::placement::on_server(new, server);
        let mut checks = self.registry.check_new(&new).await?;
        checks.insert(0, "fields are valid".into());
        checks.push(format!(
            "db_secret_ref {} is in scope and drover may write there",
            new.db_secret_ref
        ));
        let max = server
            .max_tenants
            .map_or("no limit".into(), |m| m.to_string());
        checks.push(format!(
            "server {} takes the tenant's labels and has room ({load} of {max} tenants)",
            server.name
        ));
        let (db, role) = (
            DbIdent::parse("db_name", &new.db_name).map_err(ProvisionError::invalid)?,
            DbIdent::parse("db_user", &new.db_user).map_err(ProvisionError::invalid)?,
        );
        // A tenant that does not exist yet owns nothing: any role or database by these
        // names is somebody else's, and the real job would stop there.
        if server.external().is_some() {
            checks.push(format!(
                "server {} is an external provisioner: it is asked to create role {:?} and database {:?}",
                server.name,
                role.as_str(),
                db.as_str()
            ));
        } else {
            let admin = self.admin_client(server).await?;
            admin::refuse_foreign(&admin, &db, &role, Uuid::nil()).await?;
            checks.push(format!(
                "neither role {:?} nor database {:?} exists on server {}",
                role.as_str(),
                db.as_str(),
                server.name
            ));
        }
        let version = self
            .catalog
            .newest_version()
            .await
            .map_err(|e| ProvisionError::Migrations(e.to_string()))?;
        Ok(CreatePlan {
            dry_run: true,
            portal_url: self.registry.portal_url_of(&new),
            server: Some(server.name.clone()),
            steps: if server.external().is_some() {
                external_steps(&new, &server.name, version)
            } else {
                provision_steps(&new, &server.name, version)
            },
            tenant: new,
            checks,
        })
    }
}

/// The job's steps (the module diagram) for `new` on `server`, migrating to `version`.
/// The steps on an external server: the request, then what the callback does.
fn external_steps(new: &NewTenant, server: &str, version: Option<i32>) -> Vec<String> {
    let migrate = match version {
        Some(v) => format!("on its `succeeded` callback: log in with the reported reference and migrate to version {v}"),
        None => "on its `succeeded` callback: log in with the reported reference".to_string(),
    };
    vec![
        format!(
            "register tenant {:?} as provisioning on server {server}",
            new.slug.to_ascii_lowercase()
        ),
        format!(
            "send server {server}'s provisioner a signed tenant.provisioning_requested for role {:?} and database {:?}, with a single-use callback token",
            new.db_user, new.db_name
        ),
        migrate,
        "mark the tenant active and record `migrated` and `provisioned`".into(),
    ]
}

fn provision_steps(new: &NewTenant, server: &str, version: Option<i32>) -> Vec<String> {
    let migrate = match version {
        Some(v) => format!("migrate database {:?} to version {v}", new.db_name),
        None => "no tenant migrations to apply".to_string(),
    };
    vec![
        format!(
            "register tenant {:?} as provisioning on server {server}",
            new.slug.to_ascii_lowercase()
        ),
        format!(
            "write a generated password behind {} (or reuse the one there)",
            new.db_secret_ref
        ),
        format!("create role {:?} with that password", new.db_user),
        format!(
            "create database {:?} owned by {:?}",
            new.db_name, new.db_user
        ),
        migrate,
        "mark the tenant active and record `migrated` and `provisioned`".into(),
    ]
}
