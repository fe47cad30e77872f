//! Turning a tenant row into a connection for drover's own work on the tenant database:
//! wave targets, canary analysis queries, drift scans and provisioning's first migration.
//!
//! [`TenantDb`] (the registry's, which owns the `db_*` columns) is the one shape of "where
//! a tenant database is and which secret logs into it". [`Connector`] adds the password
//! (through the resolver's secret cache, so a wave over 1,000 tenants sharing one secret
//! reads it once) and the default CA bundle (`DROVER_CA_FILE`), and hands out a
//! [`TenantConnection`] for `crate::migrate`.
//!
//! Rotation: every connection drover opens to a tenant goes through [`Connector::open`].
//! When the server refuses the password (SQLSTATE 28P01) the secret was probably rotated
//! after it was cached: the secret is fetched once more past the cache (which then holds
//! the new value) and, if it changed, the connection is tried once more.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::Resolver;
use crate::migrate::{MigrateError, TenantConnection};
use crate::registry::TenantDb;
use crate::secrets::SecretError;

/// Connections to tenant databases, for every part of drover that works on one. Cheap to
/// clone (one reference count).
#[derive(Clone)]
pub struct Connector {
    resolver: Arc<Resolver>,
    default_ca: Option<PathBuf>,
}

fn copy(p: &SecretString) -> SecretString {
    SecretString::from(p.expose_secret().to_string())
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

    /// The resolver whose secret cache this connector reads (a wave's warm-up fills it).
    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.resolver
    }

    /// How to reach `db`: its parameters and the password behind its secret reference.
    pub async fn connection(&self, db: &TenantDb) -> Result<TenantConnection, SecretError> {
        let password = self.resolver.password(&db.secret_ref).await?;
        Ok(self.with_password(db, copy(&password)))
    }

    /// Runs `open` (which connects to `db` first thing) with `db`'s connection: the
    /// password `known` (provisioning has just read or written it) or the one behind its
    /// secret reference. If the server refuses the password (28P01), the secret is
    /// fetched again past the cache and, if its value changed, `open` runs once more with
    /// it. `open` gets the connection it should use (and may hand it back in `T`).
    pub async fn open<T, F, Fut>(
        &self,
        db: &TenantDb,
        known: Option<SecretString>,
        open: F,
    ) -> Result<T, MigrateError>
    where
        F: Fn(TenantConnection) -> Fut,
        Fut: Future<Output = Result<T, MigrateError>>,
    {
        let password = match known {
            Some(p) => p,
            None => {
                let cached = self.resolver.password(&db.secret_ref).await?;
                copy(&cached)
            }
        };
        let refused = match open(self.with_password(db, copy(&password))).await {
            Err(e) if e.is_auth_failure() => e,
            other => return other,
        };
        let stats = &self.resolver.stats.secrets;
        let fresh = match self
            .resolver
            .refetch_refused(&db.secret_ref, &password)
            .await
        {
            Ok(fresh) => fresh,
            Err(e) => {
                stats.auth_failed.inc();
                tracing::warn!(user = %db.user, host = %db.host, error = %e,
                    "password refused and the secret could not be fetched again");
                return Err(refused);
            }
        };
        if fresh.expose_secret() == password.expose_secret() {
            stats.auth_unchanged.inc();
            return Err(refused);
        }
        stats.auth_retried.inc();
        tracing::info!(user = %db.user, host = %db.host,
            "password refused; connecting again with the secret's new value");
        open(self.with_password(db, copy(&fresh))).await
    }

    /// How to reach `db` with a password already in hand.
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
