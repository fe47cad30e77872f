//! The secret side of resolution: the cache of tenant passwords and every way a value gets
//! into it.
//!
//! ```text
//!  password(ref) ──► cache (TTL, stale on error, single flight) ──► fetch ──► backend
//!  password_fresh(ref)          ?fresh=true: past the cache (rate-limited per tenant)
//!  refetch_refused(ref, pw)     after a refused login (28P01): past the cache, once
//!  prefetch(refs)               warm-up: fetch_many in batches, into the cache
//! ```
//!
//! Each cached value keeps the backend's version (a KV v2 version, a cloud version id).
//! A fetch that finds the same version renews the held value (so a rendered DSN stays
//! valid); a different one replaces it and counts a rotation seen. Backends without
//! versions (env, file) compare values instead. Every backend fetch is timed and counted
//! by scheme and outcome ([`SecretStats`]). Nothing here logs a value.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{HistogramVec, IntCounter, IntCounterVec};
use secrecy::{ExposeSecret, SecretString};

use super::Resolver;
use crate::cache::Freshness;
use crate::secrets::{Fetched, SecretError, SecretRef};

/// A cached secret: the password (shared, so a rendered answer can tell it is unchanged)
/// and the backend's version of it.
#[derive(Clone)]
pub struct Held {
    pub password: Arc<SecretString>,
    version: Option<Arc<str>>,
}

impl Held {
    fn new(f: Fetched) -> Held {
        Held {
            password: Arc::new(f.value),
            version: f.version.map(Arc::from),
        }
    }

    /// Whether a fetched value is the one held: the same version where the backend keeps
    /// versions, else the same value.
    pub fn same(a: &Held, b: &Held) -> bool {
        match (&a.version, &b.version) {
            (Some(x), Some(y)) => x == y,
            _ => a.password.expose_secret() == b.password.expose_secret(),
        }
    }
}

/// The secret counters: handles into [`crate::metrics::Metrics`].
pub struct SecretStats {
    fetch_seconds: HistogramVec,
    fetches: IntCounterVec,
    batches: IntCounterVec,
    stale: IntCounterVec,
    rotations: IntCounterVec,
    /// A refused password's secret had a new value: the connection was tried again.
    pub auth_retried: IntCounter,
    /// A refused password's secret still had the refused value.
    pub auth_unchanged: IntCounter,
    /// A refused password's secret could not be fetched again.
    pub auth_failed: IntCounter,
    /// `?fresh=true` resolutions that bypassed the cache.
    pub fresh_fetched: IntCounter,
    /// `?fresh=true` resolutions answered from the cache inside the interval.
    pub fresh_limited: IntCounter,
    warm: IntCounterVec,
}

impl SecretStats {
    /// Handles into `m`.
    pub fn new(m: &crate::metrics::Metrics) -> Self {
        let auth = |o: &str| m.secret_auth_refetches_total.with_label_values(&[o]);
        let fresh = |r: &str| m.secret_fresh_total.with_label_values(&[r]);
        SecretStats {
            fetch_seconds: m.secret_fetch_duration_seconds.clone(),
            fetches: m.secret_fetches_total.clone(),
            batches: m.secret_fetch_batches_total.clone(),
            stale: m.secret_stale_served_total.clone(),
            rotations: m.secret_rotations_total.clone(),
            auth_retried: auth("retried"),
            auth_unchanged: auth("unchanged"),
            auth_failed: auth("failed"),
            fresh_fetched: fresh("fetched"),
            fresh_limited: fresh("limited"),
            warm: m.secret_warm_total.clone(),
        }
    }

    fn outcome(&self, scheme: &str, answer: &Result<Fetched, SecretError>) {
        let outcome = match answer {
            Ok(_) => "ok",
            Err(SecretError::NotFound { .. }) => "not_found",
            Err(SecretError::Denied { .. }) => "denied",
            Err(SecretError::Unsupported { .. } | SecretError::NoSecretsDir { .. }) => {
                "unsupported"
            }
            Err(SecretError::Escapes { .. } | SecretError::OutOfScope { .. }) => "refused",
            Err(_) => "unreadable",
        };
        self.fetches.with_label_values(&[scheme, outcome]).inc();
    }

    fn freshness(&self, reference: &str, f: Freshness) {
        match f {
            Freshness::Rotated => self.rotations.with_label_values(&[scheme_of(reference)]),
            Freshness::Stale => self.stale.with_label_values(&[scheme_of(reference)]),
            Freshness::Hit | Freshness::Miss => return,
        }
        .inc();
    }
}

/// The registered scheme a stored reference names, for a metric label (bounded: an
/// unknown prefix is `unknown`).
fn scheme_of(reference: &str) -> &'static str {
    reference
        .split_once(':')
        .and_then(|(name, _)| crate::secrets::scheme::Scheme::named(name))
        .map_or("unknown", |s| s.name)
}

/// Tenants that bypassed the secret cache lately, so each may do so at most once per
/// interval whatever its applications do.
pub struct FreshLimiter {
    interval: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

/// Entries the limiter keeps before dropping those past the interval: a flood of made-up
/// slugs cannot grow it without bound.
const FRESH_TRACKED: usize = 10_000;

impl FreshLimiter {
    /// A limiter allowing one fresh fetch per tenant per `interval`.
    pub fn new(interval: Duration) -> FreshLimiter {
        FreshLimiter {
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `slug` may bypass the cache now (and if so, its interval starts now).
    pub fn allow(&self, slug: &str) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last
            .get(slug)
            .is_some_and(|at| at.elapsed() < self.interval)
        {
            return false;
        }
        if last.len() >= FRESH_TRACKED {
            last.retain(|_, at| at.elapsed() < self.interval);
            if last.len() >= FRESH_TRACKED {
                // Every entry is recent: a flood. Refusing everyone would lock real
                // tenants out; forgetting them lets at most one more fetch each through.
                last.clear();
            }
        }
        last.insert(slug.to_string(), Instant::now());
        true
    }
}

/// References a warm-up hands to one `fetch_many` call.
const WARM_BATCH: usize = 200;

/// What a warm-up did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Warmed {
    /// Fetched and cached.
    pub ok: usize,
    /// Could not be fetched (or refused by scope); logged and counted, nothing else.
    pub failed: usize,
    /// Left out: over the limit, already fresh in the cache, or never cached.
    pub skipped: usize,
}

impl Resolver {
    /// How many tenants' secrets a warm-up fetches at most (`secret_warm_limit`).
    pub fn warm_limit(&self) -> usize {
        self.warm_limit
    }

    /// A stored reference parsed and checked against the scope: one outside it is never
    /// read (the registry refuses such a reference when it is written; one in the control
    /// DB anyway, written by hand or before the rule existed, is refused here).
    fn checked(&self, reference: &str) -> Result<SecretRef, SecretError> {
        let parsed: SecretRef =
            reference
                .parse()
                .map_err(|e: crate::secrets::SecretRefError| SecretError::NotFound {
                    reference: "(stored reference)".into(),
                    why: e.to_string(),
                })?;
        if let Err(rule) = self.scope.check(&parsed) {
            self.stats
                .refused
                .with_label_values(&[parsed.scheme().as_str()])
                .inc();
            tracing::error!(secret_ref = %parsed, %rule, "stored secret reference refused");
            return Err(SecretError::OutOfScope {
                reference: parsed.to_string(),
                rule,
            });
        }
        Ok(parsed)
    }

    /// One backend fetch, timed and counted.
    async fn fetch(&self, reference: &str) -> Result<Held, SecretError> {
        let parsed = self.checked(reference)?;
        let scheme = parsed.scheme().as_str();
        let started = Instant::now();
        let answer = self.store.fetch(&parsed).await;
        self.stats
            .secrets
            .fetch_seconds
            .with_label_values(&[scheme])
            .observe(started.elapsed().as_secs_f64());
        self.stats.secrets.outcome(scheme, &answer);
        if answer.is_err() {
            self.stats.backend_errors.with_label_values(&[scheme]).inc();
        }
        answer.map(Held::new)
    }

    /// The password behind a secret reference, through the secret cache.
    pub async fn password(&self, reference: &str) -> Result<Arc<SecretString>, SecretError> {
        // A scheme whose values must not be reused (e.g. short-lived credentials) is read
        // every time; the others go through the cache.
        if !crate::secrets::scheme::cacheable(reference) {
            self.stats.secret_misses.inc();
            return Ok(self.fetch(reference).await?.password);
        }
        let (held, freshness) = self
            .secrets
            .get_or_load(reference, || self.fetch(reference))
            .await?;
        match freshness {
            Freshness::Hit => self.stats.secret_hits.inc(),
            Freshness::Miss | Freshness::Rotated => self.stats.secret_misses.inc(),
            Freshness::Stale => {
                tracing::warn!(
                    secret_ref = reference,
                    "secret backend failing; serving a stale value"
                );
                self.stats.secret_stale.inc();
            }
        }
        self.stats.secrets.freshness(reference, freshness);
        Ok(held.password)
    }

    /// The password fetched past the cache, stored in it (`?fresh=true`). If the backend
    /// fails, the cached value (stale within its bound) is the answer, as for any read.
    pub async fn password_fresh(&self, reference: &str) -> Result<Arc<SecretString>, SecretError> {
        match self.refetch(reference, |_| false).await {
            Ok(password) => Ok(password),
            Err(e) => {
                tracing::warn!(secret_ref = reference, error = %e, "fresh secret fetch failed; answering from the cache");
                self.password(reference).await
            }
        }
    }

    /// The password after `refused` was refused by the tenant's server (28P01): fetched
    /// past the cache, unless the cache already holds a different value (another
    /// connection to a tenant sharing the secret refetched it while this one waited).
    pub async fn refetch_refused(
        &self,
        reference: &str,
        refused: &SecretString,
    ) -> Result<Arc<SecretString>, SecretError> {
        self.refetch(reference, |held| {
            held.password.expose_secret() != refused.expose_secret()
        })
        .await
    }

    async fn refetch(
        &self,
        reference: &str,
        keep: impl FnOnce(&Held) -> bool,
    ) -> Result<Arc<SecretString>, SecretError> {
        if !crate::secrets::scheme::cacheable(reference) {
            return Ok(self.fetch(reference).await?.password);
        }
        let (held, freshness) = self
            .secrets
            .reload(reference, keep, || self.fetch(reference))
            .await?;
        self.stats.secrets.freshness(reference, freshness);
        Ok(held.password)
    }

    /// Fetches the secrets behind `references` ahead of their use, into the cache: at most
    /// `secret_warm_limit` distinct ones (the rest are skipped), in batches of
    /// [`WARM_BATCH`] through [`crate::secrets::SecretStore::fetch_many`] (each backend
    /// batches or keeps a bounded number of reads in flight). Values already fresh in the
    /// cache and schemes never cached are skipped. Failures are logged and counted; a
    /// warm-up never fails.
    pub async fn prefetch(&self, references: impl IntoIterator<Item = String>) -> Warmed {
        let mut warmed = Warmed::default();
        let mut seen = HashSet::new();
        let mut todo = Vec::new();
        for r in references {
            if !seen.insert(r.clone()) {
                continue;
            }
            if todo.len() >= self.warm_limit
                || !crate::secrets::scheme::cacheable(&r)
                || self.secrets.peek(&r).is_some()
            {
                warmed.skipped += 1;
                continue;
            }
            match self.checked(&r) {
                Ok(parsed) => todo.push(parsed),
                Err(e) => {
                    warmed.failed += 1;
                    tracing::warn!(error = %e, "secret not fetched ahead");
                }
            }
        }
        for batch in todo.chunks(WARM_BATCH) {
            self.prefetch_batch(batch, &mut warmed).await;
        }
        let count = |o: &str, n: usize| {
            self.stats
                .secrets
                .warm
                .with_label_values(&[o])
                .inc_by(n as u64)
        };
        count("ok", warmed.ok);
        count("failed", warmed.failed);
        count("skipped", warmed.skipped);
        warmed
    }

    async fn prefetch_batch(&self, batch: &[SecretRef], warmed: &mut Warmed) {
        let stats = &self.stats.secrets;
        let mut per_scheme: BTreeMap<&str, usize> = BTreeMap::new();
        for r in batch {
            *per_scheme.entry(r.scheme().as_str()).or_default() += 1;
        }
        let started = Instant::now();
        let answers = self.store.fetch_many(batch).await;
        // A batch is one wait for all its references: each is recorded with its share.
        let share = started.elapsed().as_secs_f64() / batch.len().max(1) as f64;
        for (scheme, n) in per_scheme {
            stats.batches.with_label_values(&[scheme]).inc();
            let h = stats.fetch_seconds.with_label_values(&[scheme]);
            (0..n).for_each(|_| h.observe(share));
        }
        for (r, answer) in batch.iter().zip(answers) {
            let scheme = r.scheme().as_str();
            stats.outcome(scheme, &answer);
            match answer {
                Ok(f) => {
                    let key = r.to_string();
                    let freshness = self.secrets.put(&key, Held::new(f)).await;
                    stats.freshness(&key, freshness);
                    warmed.ok += 1;
                }
                Err(e) => {
                    self.stats.backend_errors.with_label_values(&[scheme]).inc();
                    tracing::warn!(error = %e, "secret not fetched ahead");
                    warmed.failed += 1;
                }
            }
        }
    }
}

/// The `secret-warm` task: once per start, fetches the secrets of up to
/// `secret_warm_limit` active tenants into this replica's cache, so their first
/// resolutions are hits. Never fatal: a failure is logged and counted, and the cache fills
/// on demand as without it. Then it waits for shutdown (a task returning early counts as
/// failed).
pub async fn warm_task(resolver: Arc<Resolver>, shutdown: tokio_util::sync::CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = resolver.warm_start() => {}
    }
    shutdown.cancelled().await;
}

impl Resolver {
    /// Fetches the active tenants' secrets ahead (see [`warm_task`]).
    pub async fn warm_start(&self) -> Warmed {
        if self.warm_limit == 0 {
            return Warmed::default();
        }
        let started = Instant::now();
        let refs = match self.active_refs().await {
            Ok(refs) => refs,
            Err(e) => {
                self.stats.secrets.warm.with_label_values(&["failed"]).inc();
                tracing::warn!(error = %e, "secret warm-up skipped: the tenant list could not be read");
                return Warmed::default();
            }
        };
        let warmed = self.prefetch(refs).await;
        tracing::info!(
            ok = warmed.ok,
            failed = warmed.failed,
            skipped = warmed.skipped,
            ms = started.elapsed().as_millis() as u64,
            "secret cache warmed"
        );
        warmed
    }

    async fn active_refs(&self) -> Result<Vec<String>, crate::db::DbError> {
        let client = self.pool.get().await?;
        let limit = i64::try_from(self.warm_limit).unwrap_or(i64::MAX);
        let rows = crate::registry::queries::active_secret_refs(&**client, limit).await?;
        rows.iter()
            .map(|r| r.try_get("db_secret_ref").map_err(Into::into))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(pw: &str, version: Option<&str>) -> Held {
        Held::new(Fetched {
            value: SecretString::from(pw.to_string()),
            version: version.map(str::to_string),
        })
    }

    #[test]
    fn a_versioned_secret_is_the_same_by_version_and_an_unversioned_one_by_value() {
        assert!(Held::same(&held("a", Some("1")), &held("a", Some("1"))));
        assert!(!Held::same(&held("a", Some("1")), &held("a", Some("2"))));
        assert!(Held::same(&held("a", None), &held("a", None)));
        assert!(!Held::same(&held("a", None), &held("b", None)));
    }

    #[test]
    fn a_tenant_may_bypass_the_cache_once_per_interval() {
        let limiter = FreshLimiter::new(Duration::from_secs(60));

        assert!(limiter.allow("acme"));
        assert!(
            !limiter.allow("acme"),
            "a second fresh fetch inside the interval"
        );
        assert!(
            limiter.allow("globex"),
            "another tenant has its own interval"
        );
    }

    #[test]
    fn a_flood_of_slugs_does_not_grow_the_limiter_without_bound() {
        let limiter = FreshLimiter::new(Duration::from_secs(60));

        for i in 0..FRESH_TRACKED * 3 {
            limiter.allow(&format!("t{i}"));
        }

        assert!(limiter.last.lock().unwrap().len() <= FRESH_TRACKED);
    }
}
