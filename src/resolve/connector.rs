//! Turning a tenant row into a connection for drover's own work on the tenant database:
//! wave targets, canary analysis queries and provisioning's first migration.
//!
//! [`TenantDb`] (the registry's, which owns the `db_*` columns) is the one shape of "where
//! a tenant database is and which secret logs into it". [`Connector`] adds the password
//! (through the resolver's secret cache, so a wave over 1,000 tenants sharing one secret
//! reads it once) and the default CA bundle (`DROVER_CA_FILE`), and hands out a
//! [`TenantConnection`] for `crate::migrate`.

use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::Resolver;
use crate::migrate::TenantConnection;
use crate::registry::TenantDb;
use crate::secrets::SecretError;

/// Connections to tenant databases, for every part of drover that works on one. Cheap to
/// clone (one reference count).
#[derive(Clone)]
pub struct Connector {
    resolver: Arc<Resolver>,
    default_ca: Option<PathBuf>,
}

impl Connector {
    /// A connector reading passwords through `resolver`'s secret cache; `default_ca` is
    /// the CA bundle for `verify-*` when a tenant names no `sslrootcert`.
    pub fn new(resolver: Arc<Resolver>, default_ca: Option<PathBuf>) -> Connector {
        Connector {
            resolver,
            default_ca,
        }
    }

    /// How to reach `db`: its parameters and the password behind its secret reference.
    pub async fn connection(&self, db: &TenantDb) -> Result<TenantConnection, SecretError> {
        let password = self.resolver.password(&db.secret_ref).await?;
        Ok(self.with_password(db, SecretString::from(password.expose_secret().to_string())))
    }

    /// How to reach `db` with a password already in hand (provisioning has just read or
    /// written it, and the secret cache may still hold the previous one).
    pub fn with_password(&self, db: &TenantDb, password: SecretString) -> TenantConnection {
        TenantConnection {
            host: db.host.clone(),
            port: u16::try_from(db.port).unwrap_or(5432),
            dbname: db.dbname.clone(),
            user: db.user.clone(),
            password,
            options: db.options.clone(),
            default_ca: self.default_ca.clone(),
        }
    }
}
