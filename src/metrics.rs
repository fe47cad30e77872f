//! Every Prometheus metric drover exports, in one struct owned by the app state; the doc
//! comment of each field is its HELP text. Names carry the `drover_` prefix, base units
//! and `_total` on counters; no label carries a tenant, so 10,000 tenants stay a handful
//! of series.
//!
//! Hot paths (resolution, migrations, HTTP) update counters and histograms directly.
//! Fleet-wide gauges (tenants by status and version, waves, schedules) come from the
//! control DB when `/metrics` is scraped, at most once per [`FLEET_REFRESH`], so a fleet
//! of replicas scraped every few seconds does not hammer the DB. This module has no SQL:
//! each count comes from the module owning its table ([`crate::registry::fleet_gauges`],
//! [`crate::waves::gauges`], [`crate::waves::host_limits::lowest_open`],
//! [`crate::schedule::store::next_fires`], [`crate::events::webhooks::outbox`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

const TENANT_STATUSES: [&str; 4] = ["provisioning", "active", "suspended", "deleting"];
const ISSUE_KINDS: [&str; 2] = ["drift", "needs_attention"];
const WAVE_STATES: [&str; 8] = {
    let mut names = [""; 8];
    let mut i = 0;
    while i < names.len() {
        names[i] = crate::waves::WaveState::ALL[i].as_str();
        i += 1;
    }
    names
};
const PHASE_KINDS: [&str; 2] = ["canary", "batch"];
const TARGET_STATES: [&str; 5] = ["pending", "running", "succeeded", "failed", "skipped"];

/// How stale the fleet gauges may be.
pub const FLEET_REFRESH: Duration = Duration::from_secs(5);

/// The metrics.
pub struct Metrics {
    registry: Registry,
    refreshed: Mutex<Option<Instant>>,
    /// Build information (value 1), labelled with the version.
    pub build_info: IntGaugeVec,
    /// Waves by state (every wave ever created, by its current state).
    pub waves: IntGaugeVec,
    /// Targets of unfinished waves by phase kind (canary or batch) and target state.
    pub wave_targets: IntGaugeVec,
    /// Live tenants by status.
    pub tenants: IntGaugeVec,
    /// Live active or suspended tenants by recorded schema version ("none" before the first migration).
    pub tenants_by_schema_version: IntGaugeVec,
    /// Live active or suspended tenants below the latest migration version.
    pub tenants_behind: IntGauge,
    /// Tenants with a migration problem a person must fix, by kind (drift, needs_attention).
    pub tenants_needing_attention: IntGaugeVec,
    /// Live tenants whose last provisioning attempt failed (`provisioning_error` set).
    pub tenants_provisioning_failed: IntGauge,
    /// Wall time of one tenant's migration run (connect, lock, migrate, verify), in seconds.
    pub migration_duration_seconds: Histogram,
    /// Tenant migrations (files) applied.
    pub migrations_applied_total: IntCounter,
    /// Tenant migration runs that failed, by reason (retryable, sql, drift, timeout, needs_attention).
    pub migrations_failed_total: IntCounterVec,
    /// Time spent waiting for a tenant's migration advisory lock, in seconds.
    pub lock_wait_seconds: Histogram,
    /// Migration statements that hit lock_timeout (every attempt of the retry schedule).
    pub lock_timeouts_total: IntCounter,
    /// Adaptive concurrency limit of a database host lowered by congestion, by host (the lowest over unfinished waves).
    pub host_concurrency_limit: IntGaugeVec,
    /// Provisioning jobs finished, by outcome (succeeded, failed).
    pub provisioning_total: IntCounterVec,
    /// Slug resolutions by outcome (ok, suspended, not_ready, not_found, unavailable).
    pub resolutions_total: IntCounterVec,
    /// Latency of GET /v1/resolve, in seconds.
    pub resolution_duration_seconds: Histogram,
    /// Secret cache lookups by result (hit, miss, stale).
    pub secret_cache_total: IntCounterVec,
    /// Secret backend read failures by scheme (env, file, vault).
    pub secret_backend_errors_total: IntCounterVec,
    /// Stored tenant secret references refused at read time because they are outside the allowed scope, by scheme.
    pub secret_refs_refused_total: IntCounterVec,
    /// Requests refused by authentication or authorization, by reason (missing, invalid, expired, forbidden).
    pub auth_failures_total: IntCounterVec,
    /// Next fire time of each enabled schedule, as a Unix timestamp in seconds.
    pub schedule_next_fire_timestamp_seconds: IntGaugeVec,
    /// 1 while this replica holds the leader lease, else 0.
    pub leader: IntGauge,
    /// Canary analysis measurements by check name, check type (sql, prometheus) and verdict (pass, fail, inconclusive).
    pub analysis_evaluations_total: IntCounterVec,
    /// Webhook delivery attempts by outcome (delivered, failed: retried later, dead: given up, superseded: lease lost).
    pub webhook_deliveries_total: IntCounterVec,
    /// Age of the oldest pending webhook delivery in seconds (0 when none).
    pub webhook_oldest_pending_seconds: prometheus::Gauge,
    /// Webhook deliveries that gave up (state dead), over all subscriptions.
    pub webhook_dead_deliveries: IntGauge,
    /// Event stream (SSE) clients connected to this replica.
    pub event_stream_clients: IntGauge,
    /// HTTP requests by route template, method and status code.
    pub http_requests_total: IntCounterVec,
    /// HTTP request latency by route template and method, in seconds.
    pub http_request_duration_seconds: HistogramVec,
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    r.register(Box::new(g.clone()))
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    g
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    c
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    r.register(Box::new(h.clone()))
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All metrics, registered, with every bounded label value present from the start
    /// (so dashboards and alerts see zeros rather than no data).
    pub fn new() -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            build_info: gauge_vec(&r, "drover_build_info", "Build information (value 1), labelled with the version.", &["version"]),
            waves: gauge_vec(&r, "drover_waves", "Waves by state (every wave ever created, by its current state).", &["state"]),
            wave_targets: gauge_vec(&r, "drover_wave_targets", "Targets of unfinished waves by phase kind (canary or batch) and target state.", &["phase", "state"]),
            tenants: gauge_vec(&r, "drover_tenants", "Live tenants by status.", &["status"]),
            tenants_by_schema_version: gauge_vec(&r, "drover_tenants_by_schema_version", "Live active or suspended tenants by recorded schema version (\"none\" before the first migration).", &["version"]),
            tenants_behind: {
                let g = IntGauge::new("drover_tenants_behind", "Live active or suspended tenants below the latest migration version.").unwrap_or_else(|e| unreachable!("{e}"));
                r.register(Box::new(g.clone())).unwrap_or_else(|e| unreachable!("{e}"));
                g
            },
            tenants_needing_attention: gauge_vec(&r, "drover_tenants_needing_attention", "Tenants with a migration problem a person must fix, by kind (drift, needs_attention).", &["kind"]),
            tenants_provisioning_failed: {
                let g = IntGauge::new("drover_tenants_provisioning_failed", "Live tenants whose last provisioning attempt failed (provisioning_error set).").unwrap_or_else(|e| unreachable!("{e}"));
                r.register(Box::new(g.clone())).unwrap_or_else(|e| unreachable!("{e}"));
                g
            },
            migration_duration_seconds: histogram(&r, "drover_migration_duration_seconds", "Wall time of one tenant's migration run (connect, lock, migrate, verify), in seconds.", vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0]),
            migrations_applied_total: {
                let c = IntCounter::new("drover_migrations_applied_total", "Tenant migrations (files) applied.").unwrap_or_else(|e| unreachable!("{e}"));
                r.register(Box::new(c.clone())).unwrap_or_else(|e| unreachable!("{e}"));
                c
            },
            provisioning_total: counter_vec(&r, "drover_provisioning_total", "Tenant provisioning jobs finished, by outcome (succeeded, failed).", &["outcome"]),
            migrations_failed_total: counter_vec(&r, "drover_migrations_failed_total", "Tenant migration runs that failed, by reason (retryable, sql, drift, timeout, needs_attention).", &["reason"]),
            lock_wait_seconds: histogram(&r, "drover_lock_wait_seconds", "Time spent waiting for a tenant's migration advisory lock, in seconds.", vec![0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0]),
            lock_timeouts_total: {
                let c = IntCounter::new("drover_lock_timeouts_total", "Migration statements that hit lock_timeout (every attempt of the retry schedule).").unwrap_or_else(|e| unreachable!("{e}"));
                r.register(Box::new(c.clone())).unwrap_or_else(|e| unreachable!("{e}"));
                c
            },
            host_concurrency_limit: gauge_vec(&r, "drover_host_concurrency_limit", "Adaptive concurrency limit of a database host lowered by congestion, by host (the lowest over unfinished waves).", &["db_host"]),
            resolutions_total: counter_vec(&r, "drover_resolutions_total", "Slug resolutions by outcome (ok, suspended, not_ready, not_found, unavailable).", &["outcome"]),
            resolution_duration_seconds: histogram(&r, "drover_resolution_duration_seconds", "Latency of GET /v1/resolve, in seconds.", vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]),
            secret_cache_total: counter_vec(&r, "drover_secret_cache_total", "Secret cache lookups by result (hit, miss, stale).", &["result"]),
            secret_backend_errors_total: counter_vec(&r, "drover_secret_backend_errors_total", "Secret backend read failures by scheme (env, file, vault).", &["scheme"]),
            secret_refs_refused_total: counter_vec(&r, "drover_secret_refs_refused_total", "Stored tenant secret references refused at read time because they are outside the allowed scope, by scheme.", &["scheme"]),
            auth_failures_total: counter_vec(&r, "drover_auth_failures_total", "Requests refused by authentication or authorization, by reason (missing, invalid, expired, forbidden).", &["reason"]),
            schedule_next_fire_timestamp_seconds: gauge_vec(&r, "drover_schedule_next_fire_timestamp_seconds", "Next fire time of each enabled schedule, as a Unix timestamp in seconds.", &["schedule"]),
            leader: {
                let g = IntGauge::new("drover_leader", "1 while this replica holds the leader lease, else 0.").unwrap_or_else(|e| unreachable!("{e}"));
                r.register(Box::new(g.clone())).unwrap_or_else(|e| unreachable!("{e}"));
                g
            },
            analysis_evaluations_total: counter_vec(&r, "drover_analysis_evaluations_total", "Canary analysis measurements by check name, check type (sql, prometheus) and verdict (pass, fail, inconclusive).", &["check", "type", "verdict"]),
            webhook_deliveries_total: counter_vec(&r, "drover_webhook_deliveries_total", "Webhook delivery attempts by outcome (delivered, failed: retried later, dead: given up, superseded: lease lost).", &["outcome"]),
            webhook_oldest_pending_seconds: {
                let g = prometheus::Gauge::new("drover_webhook_oldest_pending_seconds", "Age of the oldest pending webhook delivery in seconds (0 when none).").unwrap_or_else(|e| unreachable!("{e}"));
                r.register(Box::new(g.clone())).unwrap_or_else(|e| unreachable!("{e}"));
                g
            },
            webhook_dead_deliveries: {
                let g = IntGauge::new("drover_webhook_dead_deliveries", "Webhook deliveries that gave up (state dead), over all subscriptions.").unwrap_or_else(|e| unreachable!("{e}"));
                r.register(Box::new(g.clone())).unwrap_or_else(|e| unreachable!("{e}"));
                g
            },
            event_stream_clients: {
                let g = IntGauge::new("drover_event_stream_clients", "Event stream (SSE) clients connected to this replica.").unwrap_or_else(|e| unreachable!("{e}"));
                r.register(Box::new(g.clone())).unwrap_or_else(|e| unreachable!("{e}"));
                g
            },
            http_requests_total: counter_vec(&r, "drover_http_requests_total", "HTTP requests by route template, method and status code.", &["route", "method", "status"]),
            http_request_duration_seconds: {
                let h = HistogramVec::new(
                    HistogramOpts::new("drover_http_request_duration_seconds", "HTTP request latency by route template and method, in seconds.")
                        .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
                    &["route", "method"],
                )
                .unwrap_or_else(|e| unreachable!("{e}"));
                r.register(Box::new(h.clone())).unwrap_or_else(|e| unreachable!("{e}"));
                h
            },
            registry: r,
            refreshed: Mutex::new(None),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for s in WAVE_STATES {
            m.waves.with_label_values(&[s]).set(0);
        }
        for p in PHASE_KINDS {
            for s in TARGET_STATES {
                m.wave_targets.with_label_values(&[p, s]).set(0);
            }
        }
        for s in TENANT_STATUSES {
            m.tenants.with_label_values(&[s]).set(0);
        }
        for k in ISSUE_KINDS {
            m.tenants_needing_attention.with_label_values(&[k]).set(0);
        }
        for r in ["retryable", "sql", "drift", "timeout", "needs_attention"] {
            m.migrations_failed_total.with_label_values(&[r]);
        }
        for o in ["succeeded", "failed"] {
            m.provisioning_total.with_label_values(&[o]);
        }
        for o in ["ok", "suspended", "not_ready", "not_found", "unavailable"] {
            m.resolutions_total.with_label_values(&[o]);
        }
        for o in ["delivered", "failed", "dead", "superseded"] {
            m.webhook_deliveries_total.with_label_values(&[o]);
        }
        for r in ["hit", "miss", "stale"] {
            m.secret_cache_total.with_label_values(&[r]);
        }
        for s in crate::secrets::SCHEMES {
            m.secret_backend_errors_total.with_label_values(&[s.name]);
            m.secret_refs_refused_total.with_label_values(&[s.name]);
        }
        for r in ["missing", "invalid", "expired", "forbidden"] {
            m.auth_failures_total.with_label_values(&[r]);
        }
        m
    }

    /// The text exposition, refreshing the fleet gauges first when they are stale.
    pub async fn render(&self, pool: &Pool, latest_version: Option<i32>, leader: bool) -> String {
        self.leader.set(leader as i64);
        let due = self
            .refreshed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none_or(|t| t.elapsed() >= FLEET_REFRESH);
        if due {
            match self.refresh_fleet(pool, latest_version).await {
                Ok(()) => {
                    *self.refreshed.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fleet metrics refresh failed; serving the previous values")
                }
            }
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    async fn refresh_fleet(
        &self,
        pool: &Pool,
        latest: Option<i32>,
    ) -> Result<(), crate::db::DbError> {
        let client = pool.get().await?;
        // Bounded label sets are set in full (zeros included); a value the query no longer
        // returns must drop to 0, not keep its last count.
        let set_all = |g: &IntGaugeVec, known: &[&str], counts: &[(Option<String>, i64)]| {
            for k in known {
                let n = counts
                    .iter()
                    .find(|(label, _)| label.as_deref() == Some(*k))
                    .map_or(0, |(_, n)| *n);
                g.with_label_values(&[*k]).set(n);
            }
        };
        // The tenant counts come from the registry, which owns what a live tenant is.
        let fleet = crate::registry::fleet_gauges(&**client, latest).await?;
        let by_status: Vec<(Option<String>, i64)> = fleet
            .by_status
            .into_iter()
            .map(|(status, n)| (Some(status), n))
            .collect();
        set_all(&self.tenants, &TENANT_STATUSES, &by_status);
        // Versions come and go: drop old series instead of leaving zeros forever.
        self.tenants_by_schema_version.reset();
        for (version, n) in &fleet.by_version {
            self.tenants_by_schema_version
                .with_label_values(&[version.as_str()])
                .set(*n);
        }
        self.tenants_behind.set(fleet.behind);
        set_all(
            &self.tenants_needing_attention,
            &ISSUE_KINDS,
            &fleet.issues_by_kind,
        );
        self.tenants_provisioning_failed
            .set(fleet.provisioning_failed);
        // Waves, targets, host limits and schedules come from the modules owning their tables.
        let waves: Vec<(Option<String>, i64)> = crate::waves::gauges::waves_by_state(&**client)
            .await?
            .into_iter()
            .map(|c| (Some(c.state), c.waves))
            .collect();
        set_all(&self.waves, &WAVE_STATES, &waves);
        let targets = crate::waves::gauges::open_targets(&**client).await?;
        for p in PHASE_KINDS {
            for st in TARGET_STATES {
                let n = targets
                    .iter()
                    .find(|t| t.phase == p && t.state == st)
                    .map_or(0, |t| t.targets);
                self.wave_targets.with_label_values(&[p, st]).set(n);
            }
        }
        let age = crate::events::webhooks::outbox::oldest_pending_age(&**client).await;
        let dead = crate::events::webhooks::outbox::dead_count(&**client).await;
        match (age, dead) {
            (Ok(age), Ok(dead)) => {
                self.webhook_oldest_pending_seconds.set(age);
                self.webhook_dead_deliveries.set(dead);
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "webhook metrics refresh failed")
            }
        }
        // Hosts come and go with waves: drop old series rather than keep them forever.
        self.host_concurrency_limit.reset();
        for l in crate::waves::host_limits::lowest_open(&**client).await? {
            self.host_concurrency_limit
                .with_label_values(&[l.host.as_str()])
                .set(l.limit as i64);
        }
        self.schedule_next_fire_timestamp_seconds.reset();
        for f in crate::schedule::store::next_fires(&**client).await? {
            self.schedule_next_fire_timestamp_seconds
                .with_label_values(&[f.name.as_str()])
                .set(f.at);
        }
        Ok(())
    }
}
