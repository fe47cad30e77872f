//! Slug → DSN resolution for application servers: the hot path.
//!
//! `resolve(slug)` reads the tenant row (cached, invalidated by LISTEN/NOTIFY from any replica,
//! TTL as the fallback) and, for an active tenant, the password behind its secret reference
//! (cached with TTL, stale-on-error within a bound, negative-cached, single flight), then
//! builds the DSN. The status policy (docs/design.md#resolution-answers) lives in
//! [`Resolution`]:
//!
//! ```text
//!  active ─► Ok(dsn)         suspended ─► Suspended(reason) (423)
//!  provisioning|deleting ─► NotReady (409)     unknown|deleted ─► NotFound (404)
//!  secret backend failing and nothing cached ─► Err(SecretUnavailable) (503)
//! ```
//!
//! Loops: the `tenant-notify` task in [`listener`]. Passwords and DSNs exist only as
//! `SecretString`; nothing here logs them.
//!
//! The secret cache (versions, refetches, `?fresh=true`, warm-up) is [`secret`]'s.
//!
//! Settings: [`CacheSettings`], how long each cache trusts what it holds (`secret_ttl`,
//! `secret_stale_for`, `secret_negative_ttl`, `tenant_cache_ttl`), how often a tenant may
//! bypass it (`resolve_fresh_min_interval`) and how many tenants a warm-up fetches ahead
//! (`secret_warm_limit`); the configuration fills it and [`Resolver::new`] takes nothing
//! else of it.

pub mod connector;
pub mod dsn;
pub mod listener;
pub mod secret;

pub use connector::Connector;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use prometheus::IntCounter;
use secrecy::SecretString;

use crate::cache::{CachePolicy, TtlCache};
use crate::registry::{Slug, TenantDb, TenantStatus};
use crate::secrets::{RefScope, SecretError, SecretStore};

/// How long resolution trusts what it cached.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// A resolved secret is reused this long without asking the backend.
    pub secret_ttl: Duration,
    /// When the backend fails, a value past its TTL is still served this much longer.
    pub secret_stale_for: Duration,
    /// A failed read is remembered this long so a broken backend is not hammered.
    pub secret_negative_ttl: Duration,
    /// A tenant row is reused this long when change notifications are not arriving.
    pub tenant_ttl: Duration,
    /// A tenant's `?fresh=true` resolution bypasses the secret cache at most once this
    /// often; inside it the answer comes from what the last fresh fetch cached.
    pub fresh_min_interval: Duration,
    /// At most this many active tenants' secrets are fetched ahead at start.
    pub warm_limit: usize,
}

/// What resolution needs of a tenant row.
/// Not `Debug`: it caches a DSN.
pub struct TenantConn {
    pub slug: String,
    pub status: TenantStatus,
    /// Where its database is and which secret logs into it.
    pub db: TenantDb,
    pub schema_version: Option<i32>,
    pub suspended_reason: Option<String>,
    /// The answer last rendered for this row, with the password it was rendered from:
    /// rebuilt only when the secret cache hands out a different password.
    rendered: std::sync::Mutex<Option<(Arc<SecretString>, Arc<Rendered>)>>,
}

/// A rendered 200 answer. Both fields hold the password, so both are secrets.
pub struct Rendered {
    /// `postgresql://…` with the password.
    pub dsn: SecretString,
    /// The JSON body of `GET /v1/resolve/{slug}`.
    pub body: SecretString,
}

/// The 200 body, rendered once per tenant row and password.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Resolution)]
pub struct Answer<'a> {
    slug: &'a str,
    dsn: &'a str,
    host: &'a str,
    port: i32,
    dbname: &'a str,
    user: &'a str,
    options: &'a BTreeMap<String, String>,
    schema_version: Option<i32>,
}

impl TenantConn {
    fn render(&self, password: &Arc<SecretString>) -> Arc<Rendered> {
        use secrecy::ExposeSecret;
        let mut cached = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((pw, r)) = cached.as_ref() {
            if Arc::ptr_eq(pw, password) {
                return r.clone();
            }
        }
        let db = &self.db;
        let dsn = dsn::build(
            &db.host,
            db.port,
            &db.dbname,
            &db.user,
            password,
            &db.options,
        );
        let answer = Answer {
            slug: &self.slug,
            dsn: dsn.expose_secret(),
            host: &db.host,
            port: db.port,
            dbname: &db.dbname,
            user: &db.user,
            options: &db.options,
            schema_version: self.schema_version,
        };
        // Serializing borrowed strings and a string map cannot fail.
        let body = SecretString::from(serde_json::to_string(&answer).unwrap_or_default());
        let r = Arc::new(Rendered { dsn, body });
        *cached = Some((password.clone(), r.clone()));
        r
    }
}

/// A successful resolution. Not `Debug`: it holds the DSN.
pub struct Resolved {
    /// The tenant's connection parameters.
    pub tenant: Arc<TenantConn>,
    /// The DSN and the response body.
    pub rendered: Arc<Rendered>,
}

/// The answer for a slug, by tenant status.
pub enum Resolution {
    /// Active: here is the DSN.
    Ok(Resolved),
    /// Suspended, with the reason.
    Suspended { reason: Option<String> },
    /// Provisioning or deleting: exists, but not connectable now.
    NotReady { status: TenantStatus },
    /// Unknown or deleted.
    NotFound,
}

/// Why resolution could not answer. `Clone`: one failed read answers every request that
/// waited for it (single flight), hence the `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// The secret backend failed and nothing usable was cached, or the stored reference is
    /// outside its scope.
    #[error(transparent)]
    SecretUnavailable(#[from] SecretError),
    /// The control DB failed and nothing usable was cached.
    #[error(transparent)]
    ControlDb(Arc<crate::db::DbError>),
}

impl ResolveError {
    /// Whether the caller should retry (after the `Retry-After` it was given): yes, unless
    /// the stored reference is outside its scope, which only a changed reference fixes.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ResolveError::SecretUnavailable(SecretError::OutOfScope { .. })
        )
    }
}

/// Resolution counters: handles into [`crate::metrics::Metrics`], bound to their label
/// values once so the hot path does no label lookups.
pub struct ResolveStats {
    /// Answered 200.
    pub ok: IntCounter,
    /// Answered 423.
    pub suspended: IntCounter,
    /// Answered 409.
    pub not_ready: IntCounter,
    /// Answered 404.
    pub not_found: IntCounter,
    /// Answered 503.
    pub unavailable: IntCounter,
    /// Secret cache hits.
    pub secret_hits: IntCounter,
    /// Secret cache misses (backend reads that succeeded).
    pub secret_misses: IntCounter,
    /// Stale secrets served because the backend failed.
    pub secret_stale: IntCounter,
    backend_errors: prometheus::IntCounterVec,
    refused: prometheus::IntCounterVec,
    /// The per-scheme secret counters (fetches, rotations, refetches, warm-ups).
    pub secrets: secret::SecretStats,
}

impl ResolveStats {
    /// Handles into `m`.
    pub fn new(m: &crate::metrics::Metrics) -> Self {
        let outcome = |o: &str| m.resolutions_total.with_label_values(&[o]);
        let cache = |r: &str| m.secret_cache_total.with_label_values(&[r]);
        ResolveStats {
            ok: outcome("ok"),
            suspended: outcome("suspended"),
            not_ready: outcome("not_ready"),
            not_found: outcome("not_found"),
            unavailable: outcome("unavailable"),
            secret_hits: cache("hit"),
            secret_misses: cache("miss"),
            secret_stale: cache("stale"),
            backend_errors: m.secret_backend_errors_total.clone(),
            refused: m.secret_refs_refused_total.clone(),
            secrets: secret::SecretStats::new(m),
        }
    }
}

/// The resolver; shared by all request handlers.
pub struct Resolver {
    pool: Pool,
    store: SecretStore,
    tenants: TtlCache<Option<Arc<TenantConn>>, ResolveError>,
    secrets: TtlCache<secret::Held, SecretError>,
    /// When each tenant last bypassed the secret cache (`?fresh=true`).
    fresh: secret::FreshLimiter,
    warm_limit: usize,
    /// The references a tenant may use; a stored one outside it is never read.
    scope: RefScope,
    /// Counters for metrics and tests.
    pub stats: ResolveStats,
}

const MAX_CACHED: usize = 200_000;

impl Resolver {
    /// A resolver over the control pool and secret backends.
    pub fn new(
        pool: Pool,
        store: SecretStore,
        cfg: &CacheSettings,
        metrics: &crate::metrics::Metrics,
    ) -> Self {
        let tenants = TtlCache::new(CachePolicy {
            ttl: cfg.tenant_ttl,
            stale_for: cfg.secret_stale_for,
            negative_ttl: cfg.secret_negative_ttl,
            max_entries: MAX_CACHED,
        });
        let secrets = TtlCache::new(CachePolicy {
            ttl: cfg.secret_ttl,
            stale_for: cfg.secret_stale_for,
            negative_ttl: cfg.secret_negative_ttl,
            max_entries: MAX_CACHED,
        })
        .with_same(secret::Held::same);
        Resolver {
            pool,
            store,
            tenants,
            secrets,
            fresh: secret::FreshLimiter::new(cfg.fresh_min_interval),
            warm_limit: cfg.warm_limit,
            scope: RefScope::default(),
            stats: ResolveStats::new(metrics),
        }
    }

    /// The same resolver, refusing stored references outside `scope`.
    pub fn with_scope(mut self, scope: RefScope) -> Self {
        self.scope = scope;
        self
    }

    /// Drops one tenant from the cache (a change notification arrived).
    pub fn forget_tenant(&self, slug: &str) {
        self.tenants.invalidate(slug);
    }

    /// Drops one cached secret (drover just wrote or removed it).
    pub fn forget_secret(&self, reference: &str) {
        self.secrets.invalidate(reference);
    }

    /// Drops every cached tenant (the notification stream was interrupted).
    pub fn forget_all_tenants(&self) {
        self.tenants.clear();
    }

    /// Resolves `slug` under the status policy.
    pub async fn resolve(&self, slug: &str) -> Result<Resolution, ResolveError> {
        let Ok(slug) = Slug::for_lookup(slug) else {
            return Ok(self.count(Resolution::NotFound));
        };
        // Hot path: both answers cached, no await. The loading path is boxed so the
        // handler's future stays small (it is allocated for every request).
        if let Some(answer) = self.cached(slug.as_str()) {
            return Ok(self.count(answer));
        }
        Box::pin(self.resolve_loading(slug, false)).await
    }

    /// Resolves `slug` with its password fetched from the backend past the secret cache
    /// (`?fresh=true`: an application whose login was just refused). At most once per
    /// tenant per `resolve_fresh_min_interval`; inside it, the answer comes from the cache,
    /// which holds what the last fresh fetch found.
    pub async fn resolve_fresh(&self, slug: &str) -> Result<Resolution, ResolveError> {
        let Ok(slug) = Slug::for_lookup(slug) else {
            return Ok(self.count(Resolution::NotFound));
        };
        if !self.fresh.allow(slug.as_str()) {
            self.stats.secrets.fresh_limited.inc();
            return self.resolve(slug.as_str()).await;
        }
        self.stats.secrets.fresh_fetched.inc();
        Box::pin(self.resolve_loading(slug, true)).await
    }

    /// The answer from fresh cache entries only.
    fn cached(&self, slug: &str) -> Option<Resolution> {
        let tenant = self.tenants.peek(slug)?;
        let Some(tenant) = tenant else {
            return Some(Resolution::NotFound);
        };
        Some(match tenant.status {
            TenantStatus::Active => {
                let password = self.secrets.peek(&tenant.db.secret_ref)?.password;
                self.stats.secret_hits.inc();
                let rendered = tenant.render(&password);
                Resolution::Ok(Resolved { tenant, rendered })
            }
            other => Self::refusal(&tenant, other),
        })
    }

    fn refusal(tenant: &TenantConn, status: TenantStatus) -> Resolution {
        match status {
            TenantStatus::Suspended => Resolution::Suspended {
                reason: tenant.suspended_reason.clone(),
            },
            TenantStatus::Deleted => Resolution::NotFound,
            status => Resolution::NotReady { status },
        }
    }

    #[tracing::instrument(skip_all, fields(slug = %slug))]
    async fn resolve_loading(&self, slug: Slug, fresh: bool) -> Result<Resolution, ResolveError> {
        let (tenant, _) = self
            .tenants
            .get_or_load(slug.as_str(), || load_tenant(&self.pool, slug.as_str()))
            .await?;
        let Some(tenant) = tenant else {
            return Ok(self.count(Resolution::NotFound));
        };
        let answer = match tenant.status {
            TenantStatus::Active => {
                let password = if fresh {
                    self.password_fresh(&tenant.db.secret_ref).await
                } else {
                    self.password(&tenant.db.secret_ref).await
                };
                let password = match password {
                    Ok(p) => p,
                    Err(e) => {
                        self.stats.unavailable.inc();
                        tracing::warn!(secret_ref = %tenant.db.secret_ref, error = %e, "secret unavailable");
                        return Err(e.into());
                    }
                };
                let rendered = tenant.render(&password);
                Resolution::Ok(Resolved { tenant, rendered })
            }
            other => Self::refusal(&tenant, other),
        };
        Ok(self.count(answer))
    }

    fn count(&self, r: Resolution) -> Resolution {
        let counter = match r {
            Resolution::Ok(_) => &self.stats.ok,
            Resolution::Suspended { .. } => &self.stats.suspended,
            Resolution::NotReady { .. } => &self.stats.not_ready,
            Resolution::NotFound => &self.stats.not_found,
        };
        counter.inc();
        r
    }
}

async fn load_tenant(pool: &Pool, slug: &str) -> Result<Option<Arc<TenantConn>>, ResolveError> {
    use crate::db::DbError;
    let fail = |e: DbError| ResolveError::ControlDb(Arc::new(e));
    let client = pool.get().await.map_err(|e| fail(e.into()))?;
    let row = crate::registry::queries::resolution_row(&client, slug)
        .await
        .map_err(|e| fail(e.into()))?;
    let Some(row) = row else { return Ok(None) };
    let pg = |e: tokio_postgres::Error| fail(e.into());
    let status: String = row.try_get("status").map_err(pg)?;
    Ok(Some(Arc::new(TenantConn {
        slug: row.try_get("slug").map_err(pg)?,
        status: status
            .parse()
            .map_err(|e: crate::registry::RegistryError| {
                fail(DbError::Corrupt {
                    what: "the tenant row's status".into(),
                    source: Box::new(e),
                })
            })?,
        db: TenantDb::from_row(&row).map_err(pg)?,
        schema_version: row.try_get("schema_version").map_err(pg)?,
        suspended_reason: row.try_get("suspended_reason").map_err(pg)?,
        rendered: std::sync::Mutex::new(None),
    })))
}
