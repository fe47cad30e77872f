//! `GET /metrics` and the fleet gauges behind it.
//!
//! A scrape only encodes what [`crate::metrics::Metrics`] holds: it never queries the
//! control DB, so a fleet of replicas scraped every few seconds (or a client hammering the
//! unauthenticated route) costs the DB nothing. The fleet-wide gauges (tenants by status
//! and version, waves, open targets, host limits, schedules, the webhook backlog) are a
//! snapshot kept fresh by one background task per replica:
//!
//! ```text
//!  fleet-gauges task: refresh ──► sleep FLEET_REFRESH (5 s) ──► refresh ──► … until shutdown
//!       refresh: registry, waves, schedule, events (each owns its table) ──► gauges
//!  GET /metrics: leader flag (memory) ──► encode
//! ```
//!
//! A failed refresh is logged and leaves the previous values; the next one tries again.
//! The counts come from the modules owning their tables; this module has no SQL. The
//! bounded label values of those gauges, and the secret schemes, are preset here (with
//! zeros) before the server starts, since `metrics` knows no domain.

use std::time::Duration;

use axum::extract::State;
use prometheus::IntGaugeVec;
use tokio_util::sync::CancellationToken;

use crate::db::DbError;
use crate::metrics::Metrics;
use crate::state::AppState;

/// How stale the fleet gauges may be.
pub const FLEET_REFRESH: Duration = Duration::from_secs(5);

const TENANT_STATUSES: [&str; 4] = ["provisioning", "active", "suspended", "deleting"];
const ISSUE_KINDS: [&str; 2] = ["drift", "needs_attention"];
const PHASE_KINDS: [&str; 2] = ["canary", "batch"];
const TARGET_STATES: [&str; 5] = ["pending", "running", "succeeded", "failed", "skipped"];

fn wave_states() -> impl Iterator<Item = &'static str> {
    crate::waves::WaveState::ALL.iter().map(|s| s.as_str())
}

/// `GET /metrics`: Prometheus text format; no token (scrapers rarely carry one, and
/// nothing here names a tenant or a secret).
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics",
    summary = "Prometheus metrics", description = "The Prometheus text exposition format (names prefixed `drover_`).",
    responses((status = 200, description = "Metrics in the Prometheus text format (version 0.0.4).", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    // In memory, and it changes between refreshes: read at the scrape.
    state
        .metrics
        .leader
        .set(i64::from(state.leadership.is_leader()));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.encode(),
    )
}

/// Gives every bounded label value a domain owns its series at 0 from the start, so
/// dashboards and alerts see zeros rather than no data before the first refresh.
pub fn preset(m: &Metrics) {
    let states: Vec<&str> = wave_states().collect();
    Metrics::preset(&m.waves, &states);
    Metrics::preset(&m.tenants, &TENANT_STATUSES);
    Metrics::preset(&m.tenants_needing_attention, &ISSUE_KINDS);
    for p in PHASE_KINDS {
        for s in TARGET_STATES {
            m.wave_targets.with_label_values(&[p, s]);
        }
    }
    let schemes: Vec<&str> = crate::secrets::SCHEMES.iter().map(|s| s.name).collect();
    Metrics::preset(&m.secret_backend_errors_total, &schemes);
    Metrics::preset(&m.secret_refs_refused_total, &schemes);
    Metrics::preset(&m.secret_fetch_batches_total, &schemes);
    Metrics::preset(&m.secret_stale_served_total, &schemes);
    Metrics::preset(&m.secret_rotations_total, &schemes);
    for s in &schemes {
        m.secret_fetch_duration_seconds.with_label_values(&[s]);
        m.secret_fetches_total.with_label_values(&[s, "ok"]);
    }
}

/// The `fleet-gauges` task: refreshes at once, then every [`FLEET_REFRESH`] until
/// `shutdown`.
pub async fn refresh_fleet_gauges(state: AppState, shutdown: CancellationToken) {
    loop {
        if let Err(e) = refresh(&state).await {
            tracing::warn!(error = %e, "fleet metrics refresh failed; serving the previous values");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(FLEET_REFRESH) => {}
        }
    }
}

async fn refresh(state: &AppState) -> Result<(), DbError> {
    // A failed lookup leaves "behind" to the directory's files rather than skipping the
    // refresh; the control DB's health has its own series.
    let latest = match state.catalog.newest_version().await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the newest migration set");
            state.catalog.latest()
        }
    };
    let m = &state.metrics;
    let client = state.pool.get().await.map_err(DbError::from)?;
    let client = &**client;
    // The tenant counts come from the registry, which owns what a live tenant is.
    let fleet = crate::registry::fleet_gauges(client, latest).await?;
    let by_status: Vec<(Option<String>, i64)> = fleet
        .by_status
        .into_iter()
        .map(|(status, n)| (Some(status), n))
        .collect();
    set_all(&m.tenants, TENANT_STATUSES, &by_status);
    // Versions come and go: drop old series instead of leaving zeros forever.
    m.tenants_by_schema_version.reset();
    for (version, n) in &fleet.by_version {
        m.tenants_by_schema_version
            .with_label_values(&[version.as_str()])
            .set(*n);
    }
    m.tenants_behind.set(fleet.behind);
    set_all(
        &m.tenants_needing_attention,
        ISSUE_KINDS,
        &fleet.issues_by_kind,
    );
    m.tenants_provisioning_failed.set(fleet.provisioning_failed);
    match crate::drift::store::drifted_count(client).await {
        Ok(n) => m.tenants_drifted.set(n),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count the drifted tenants"),
    }
    refresh_waves(m, client).await?;
    refresh_webhooks(m, client).await;
    m.schedule_next_fire_timestamp_seconds.reset();
    for f in crate::schedule::store::next_fires(client).await? {
        m.schedule_next_fire_timestamp_seconds
            .with_label_values(&[f.name.as_str()])
            .set(f.at);
    }
    Ok(())
}

/// Waves by state, the open targets and the lowered host limits, from the waves module.
async fn refresh_waves(m: &Metrics, client: &tokio_postgres::Client) -> Result<(), DbError> {
    let waves: Vec<(Option<String>, i64)> = crate::waves::gauges::waves_by_state(client)
        .await?
        .into_iter()
        .map(|c| (Some(c.state), c.waves))
        .collect();
    set_all(&m.waves, wave_states(), &waves);
    let targets = crate::waves::gauges::open_targets(client).await?;
    for p in PHASE_KINDS {
        for st in TARGET_STATES {
            let n = targets
                .iter()
                .find(|t| t.phase == p && t.state == st)
                .map_or(0, |t| t.targets);
            m.wave_targets.with_label_values(&[p, st]).set(n);
        }
    }
    // Hosts come and go with waves: drop old series rather than keep them forever.
    m.host_concurrency_limit.reset();
    for l in crate::waves::host_limits::lowest_open(client).await? {
        m.host_concurrency_limit
            .with_label_values(&[l.host.as_str()])
            .set(l.limit as i64);
    }
    Ok(())
}

/// The webhook backlog; a failure here is logged and does not stop the other gauges.
async fn refresh_webhooks(m: &Metrics, client: &tokio_postgres::Client) {
    let age = crate::events::webhooks::outbox::oldest_pending_age(client).await;
    let dead = crate::events::webhooks::outbox::dead_count(client).await;
    match (age, dead) {
        (Ok(age), Ok(dead)) => {
            m.webhook_oldest_pending_seconds.set(age);
            m.webhook_dead_deliveries.set(dead);
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "webhook metrics refresh failed")
        }
    }
}

/// Sets a bounded label set in full (zeros included): a value the query no longer
/// returns must drop to 0, not keep its last count.
fn set_all<'a>(
    g: &IntGaugeVec,
    known: impl IntoIterator<Item = &'a str>,
    counts: &[(Option<String>, i64)],
) {
    for k in known {
        let n = counts
            .iter()
            .find(|(label, _)| label.as_deref() == Some(k))
            .map_or(0, |(_, n)| *n);
        g.with_label_values(&[k]).set(n);
    }
}
