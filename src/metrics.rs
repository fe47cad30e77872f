//! Every Prometheus metric drover exports, in one struct owned by the app state; the doc
//! comment of each field is its HELP text. Names carry the `drover_` prefix, base units
//! and `_total` on counters; no label carries a tenant, so 10,000 tenants stay a handful
//! of series.
//!
//! This is a leaf: it holds the handles and encodes them, and imports no domain. Hot paths
//! (resolution, migrations, HTTP) update counters and histograms directly. The fleet-wide
//! gauges (tenants by status and version, waves, schedules, the webhook backlog) are set by
//! a background task of the code serving `/metrics` (`src/http/metrics.rs`), which reads
//! them from the modules owning their tables; label values a domain owns (wave states,
//! secret schemes) are preset by that caller too, so a scrape only encodes.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The metrics.
pub struct Metrics {
    registry: Registry,
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
    /// Live tenants with schema drift: their last fingerprint differs from the expected schema of their version.
    pub tenants_drifted: IntGauge,
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
    /// Latency of one secret backend fetch for resolution and tenant connections, by scheme, in seconds.
    pub secret_fetch_duration_seconds: HistogramVec,
    /// Secret backend fetches for resolution and tenant connections by scheme and outcome (ok, not_found, denied, unreadable, unsupported, refused).
    pub secret_fetches_total: IntCounterVec,
    /// Batched secret fetches (one fetch_many call of a warm-up, however many secrets it holds), by scheme.
    pub secret_fetch_batches_total: IntCounterVec,
    /// Stale secrets served because the backend failed, by scheme.
    pub secret_stale_served_total: IntCounterVec,
    /// Secrets found changed at a fetch (a new backend version, or a new value where the backend has no versions), by scheme.
    pub secret_rotations_total: IntCounterVec,
    /// Refetches of a tenant's secret after its password was refused (SQLSTATE 28P01), by outcome (retried: a new value was found and the connection tried again, unchanged, failed).
    pub secret_auth_refetches_total: IntCounterVec,
    /// Resolutions asked with fresh=true by result (fetched: the cache was bypassed, limited: answered from the cache inside the per-tenant interval).
    pub secret_fresh_total: IntCounterVec,
    /// Secrets fetched ahead (at start and when a wave plans) by outcome (ok, failed, skipped: over the limit).
    pub secret_warm_total: IntCounterVec,
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
    /// Wave tenants this replica claimed ahead and has not started yet.
    pub worker_buffered_tenants: IntGauge,
    /// Finished wave tenants of this replica whose outcome waits to be recorded.
    pub worker_unrecorded_outcomes: IntGauge,
    /// HTTP requests by route template, method and status code.
    pub http_requests_total: IntCounterVec,
    /// HTTP request latency by route template and method, in seconds.
    pub http_request_duration_seconds: HistogramVec,
    /// Background tasks that panicked, failed or returned before shutdown, by task name.
    pub task_failures_total: IntCounterVec,
    /// Rows removed past their retention by the leader's pruner, by table.
    pub pruned_rows_total: IntCounterVec,
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    r.register(Box::new(g.clone()))
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| unreachable!("metric {name}: {e}"));
    c
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

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
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
    /// All metrics, registered, with the label values this module knows present from the
    /// start (so dashboards and alerts see zeros rather than no data); the caller presets
    /// the ones a domain owns ([`Metrics::preset`]).
    pub fn new() -> Metrics {
        let r = Registry::new();
        #[rustfmt::skip]
        let m = Metrics {
            build_info: gauge_vec(&r, "drover_build_info", "Build information (value 1), labelled with the version.", &["version"]),
            waves: gauge_vec(&r, "drover_waves", "Waves by state (every wave ever created, by its current state).", &["state"]),
            wave_targets: gauge_vec(&r, "drover_wave_targets", "Targets of unfinished waves by phase kind (canary or batch) and target state.", &["phase", "state"]),
            tenants: gauge_vec(&r, "drover_tenants", "Live tenants by status.", &["status"]),
            tenants_by_schema_version: gauge_vec(&r, "drover_tenants_by_schema_version", "Live active or suspended tenants by recorded schema version (\"none\" before the first migration).", &["version"]),
            tenants_behind: gauge(&r, "drover_tenants_behind", "Live active or suspended tenants below the latest migration version."),
            tenants_needing_attention: gauge_vec(&r, "drover_tenants_needing_attention", "Tenants with a migration problem a person must fix, by kind (drift, needs_attention).", &["kind"]),
            tenants_provisioning_failed: gauge(&r, "drover_tenants_provisioning_failed", "Live tenants whose last provisioning attempt failed (provisioning_error set)."),
            tenants_drifted: gauge(&r, "drover_tenants_drifted", "Live tenants with schema drift: their last fingerprint differs from the expected schema of their version."),
            migration_duration_seconds: histogram(&r, "drover_migration_duration_seconds", "Wall time of one tenant's migration run (connect, lock, migrate, verify), in seconds.", vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0]),
            migrations_applied_total: counter(&r, "drover_migrations_applied_total", "Tenant migrations (files) applied."),
            provisioning_total: counter_vec(&r, "drover_provisioning_total", "Tenant provisioning jobs finished, by outcome (succeeded, failed).", &["outcome"]),
            migrations_failed_total: counter_vec(&r, "drover_migrations_failed_total", "Tenant migration runs that failed, by reason (retryable, sql, drift, timeout, needs_attention).", &["reason"]),
            lock_wait_seconds: histogram(&r, "drover_lock_wait_seconds", "Time spent waiting for a tenant's migration advisory lock, in seconds.", vec![0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0]),
            lock_timeouts_total: counter(&r, "drover_lock_timeouts_total", "Migration statements that hit lock_timeout (every attempt of the retry schedule)."),
            host_concurrency_limit: gauge_vec(&r, "drover_host_concurrency_limit", "Adaptive concurrency limit of a database host lowered by congestion, by host (the lowest over unfinished waves).", &["db_host"]),
            resolutions_total: counter_vec(&r, "drover_resolutions_total", "Slug resolutions by outcome (ok, suspended, not_ready, not_found, unavailable).", &["outcome"]),
            resolution_duration_seconds: histogram(&r, "drover_resolution_duration_seconds", "Latency of GET /v1/resolve, in seconds.", vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]),
            secret_cache_total: counter_vec(&r, "drover_secret_cache_total", "Secret cache lookups by result (hit, miss, stale).", &["result"]),
            secret_backend_errors_total: counter_vec(&r, "drover_secret_backend_errors_total", "Secret backend read failures by scheme (env, file, vault).", &["scheme"]),
            secret_refs_refused_total: counter_vec(&r, "drover_secret_refs_refused_total", "Stored tenant secret references refused at read time because they are outside the allowed scope, by scheme.", &["scheme"]),
            secret_fetch_duration_seconds: histogram_vec(&r, "drover_secret_fetch_duration_seconds", "Latency of one secret backend fetch for resolution and tenant connections, by scheme, in seconds.", &["scheme"], vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
            secret_fetches_total: counter_vec(&r, "drover_secret_fetches_total", "Secret backend fetches for resolution and tenant connections by scheme and outcome (ok, not_found, denied, unreadable, unsupported, refused).", &["scheme", "outcome"]),
            secret_fetch_batches_total: counter_vec(&r, "drover_secret_fetch_batches_total", "Batched secret fetches (one fetch_many call of a warm-up, however many secrets it holds), by scheme.", &["scheme"]),
            secret_stale_served_total: counter_vec(&r, "drover_secret_stale_served_total", "Stale secrets served because the backend failed, by scheme.", &["scheme"]),
            secret_rotations_total: counter_vec(&r, "drover_secret_rotations_total", "Secrets found changed at a fetch (a new backend version, or a new value where the backend has no versions), by scheme.", &["scheme"]),
            secret_auth_refetches_total: counter_vec(&r, "drover_secret_auth_refetches_total", "Refetches of a tenant's secret after its password was refused (SQLSTATE 28P01), by outcome (retried, unchanged, failed).", &["outcome"]),
            secret_fresh_total: counter_vec(&r, "drover_secret_fresh_total", "Resolutions asked with fresh=true by result (fetched: the cache was bypassed, limited: answered from the cache inside the per-tenant interval).", &["result"]),
            secret_warm_total: counter_vec(&r, "drover_secret_warm_total", "Secrets fetched ahead (at start and when a wave plans) by outcome (ok, failed, skipped: over the limit).", &["outcome"]),
            auth_failures_total: counter_vec(&r, "drover_auth_failures_total", "Requests refused by authentication or authorization, by reason (missing, invalid, expired, forbidden).", &["reason"]),
            schedule_next_fire_timestamp_seconds: gauge_vec(&r, "drover_schedule_next_fire_timestamp_seconds", "Next fire time of each enabled schedule, as a Unix timestamp in seconds.", &["schedule"]),
            leader: gauge(&r, "drover_leader", "1 while this replica holds the leader lease, else 0."),
            analysis_evaluations_total: counter_vec(&r, "drover_analysis_evaluations_total", "Canary analysis measurements by check name, check type (sql, prometheus) and verdict (pass, fail, inconclusive).", &["check", "type", "verdict"]),
            webhook_deliveries_total: counter_vec(&r, "drover_webhook_deliveries_total", "Webhook delivery attempts by outcome (delivered, failed: retried later, dead: given up, superseded: lease lost).", &["outcome"]),
            webhook_oldest_pending_seconds: {
                let g = prometheus::Gauge::new("drover_webhook_oldest_pending_seconds", "Age of the oldest pending webhook delivery in seconds (0 when none).").unwrap_or_else(|e| unreachable!("{e}"));
                r.register(Box::new(g.clone())).unwrap_or_else(|e| unreachable!("{e}"));
                g
            },
            webhook_dead_deliveries: gauge(&r, "drover_webhook_dead_deliveries", "Webhook deliveries that gave up (state dead), over all subscriptions."),
            event_stream_clients: gauge(&r, "drover_event_stream_clients", "Event stream (SSE) clients connected to this replica."),
            worker_buffered_tenants: gauge(&r, "drover_worker_buffered_tenants", "Wave tenants this replica claimed ahead and has not started yet."),
            worker_unrecorded_outcomes: gauge(&r, "drover_worker_unrecorded_outcomes", "Finished wave tenants of this replica whose outcome waits to be recorded."),
            http_requests_total: counter_vec(&r, "drover_http_requests_total", "HTTP requests by route template, method and status code.", &["route", "method", "status"]),
            http_request_duration_seconds: histogram_vec(&r, "drover_http_request_duration_seconds", "HTTP request latency by route template and method, in seconds.", &["route", "method"], vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
            task_failures_total: counter_vec(&r, "drover_task_failures_total", "Background tasks that panicked, failed or returned before shutdown, by task name.", &["task"]),
            pruned_rows_total: counter_vec(&r, "drover_pruned_rows_total", "Rows removed past their retention by the leader's pruner, by table.", &["table"]),
            registry: r,
        };
        m.preset_own_labels();
        m
    }

    /// The bounded label values of the counters this module documents.
    fn preset_own_labels(&self) {
        self.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let sets: [(&IntCounterVec, &[&str]); 9] = [
            (
                &self.migrations_failed_total,
                &["retryable", "sql", "drift", "timeout", "needs_attention"],
            ),
            (&self.provisioning_total, &["succeeded", "failed"]),
            (
                &self.resolutions_total,
                &["ok", "suspended", "not_ready", "not_found", "unavailable"],
            ),
            (
                &self.webhook_deliveries_total,
                &["delivered", "failed", "dead", "superseded"],
            ),
            (&self.secret_cache_total, &["hit", "miss", "stale"]),
            (
                &self.secret_auth_refetches_total,
                &["retried", "unchanged", "failed"],
            ),
            (&self.secret_fresh_total, &["fetched", "limited"]),
            (&self.secret_warm_total, &["ok", "failed", "skipped"]),
            (
                &self.auth_failures_total,
                &["missing", "invalid", "expired", "forbidden"],
            ),
        ];
        for (counter, values) in sets {
            Self::preset(counter, values);
        }
    }

    /// Makes each of `values` a series (at 0) of a one-label counter or gauge family, for
    /// label values only the caller knows (a domain's states, the secret schemes).
    pub fn preset<T: prometheus::core::MetricVecBuilder>(
        family: &prometheus::core::MetricVec<T>,
        values: &[&str],
    ) {
        for v in values {
            family.with_label_values(&[*v]);
        }
    }

    /// The text exposition of every metric, as they stand.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
