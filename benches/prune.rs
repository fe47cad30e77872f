//! Pruning a year of events while the feed is read.
//!
//! `cargo bench --bench prune` starts a throwaway PostgreSQL, loads BENCH_EVENTS (default
//! 5,000,000) events spread evenly over the last 365 days (90 % tenant events over 1,000
//! tenants, 10 % wave events over 100 waves) into their month partitions, then runs the
//! leader's prune rounds with `event_retention` = 180 d while a reader pages the feed
//! without pause, and prints:
//!   - the feed page latency (p50 / p99 / max) before and during pruning;
//!   - round 1, a retention ending on a month boundary: only whole months are dropped;
//!   - round 2, 180 d: the edge month's rows past retention are deleted in batches of 1,000;
//!     and the rows per second of each.

mod support;
use support::env_or;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::events::feed;
use drover::events::FilterParams;
use drover::retention::{domain_sweeps, Pruner, RetentionSettings};
use tokio_util::sync::CancellationToken;

/// Month partitions for the past year, then the events (triggers and foreign keys off for
/// the load only: no webhook is subscribed, and the ids below exist).
const SEED: &str = "
SELECT control_plane.event_partition_create(t, (date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => m))::date)
FROM unnest(ARRAY['tenant_events', 'wave_events', 'control_events']) AS t, generate_series(1, 13) AS m;
SET session_replication_role = replica;
INSERT INTO control_plane.tenants (slug, display_name, db_name, db_host, db_user, db_secret_ref, status)
SELECT 't-' || g, 'Tenant ' || g, 't_' || g, 'db1', 'u_' || g, 'file:tenants/t-' || g, 'active'
FROM generate_series(1, 1000) g;
CREATE TEMP TABLE bench_ids AS
SELECT (SELECT array_agg(id) FROM control_plane.tenants) AS tenants,
       (SELECT array_agg(gen_random_uuid()) FROM generate_series(1, 100)) AS waves;
";

const TENANT_EVENTS: &str = "
INSERT INTO control_plane.tenant_events (tenant_id, event_type, actor, payload, created_at)
SELECT i.tenants[1 + g % 1000],
       (ARRAY['created','updated','migrated','suspended','resumed','error','migrated','migrated','updated'])[1 + g % 9],
       (ARRAY['drover','api','api:cli:alice','api:cli:bob','schedule:nightly'])[1 + g % 5],
       CASE WHEN g % 9 IN (2, 6, 7) THEN jsonb_build_object('from', 1, 'to', 2, 'wave_id', i.waves[1 + g % 100]::text) ELSE '{}'::jsonb END,
       now() - make_interval(secs => g * (365 * 86400.0 / $1::int))
FROM bench_ids i, generate_series(1, $1::int) g";

const WAVE_EVENTS: &str = "
INSERT INTO control_plane.wave_events (wave_id, event_type, actor, payload, created_at)
SELECT i.waves[1 + g % 100],
       (ARRAY['created','canary_started','canary_passed','soak_started','soak_passed','batch_started','batch_started','completed','halted','paused'])[1 + g % 10],
       CASE WHEN g % 10 = 0 THEN 'api:cli:alice' ELSE 'drover' END,
       '{}'::jsonb,
       now() - make_interval(secs => g * (365 * 86400.0 / $1::int))
FROM bench_ids i, generate_series(1, $1::int) g";

/// Latencies, sorted.
struct Latencies(Vec<Duration>);

impl Latencies {
    fn at(&self, q: f64) -> f64 {
        let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        self.0[i].as_secs_f64() * 1e3
    }

    fn line(&self) -> String {
        format!(
            "{} pages: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            self.0.len(),
            self.at(0.5),
            self.at(0.99),
            self.at(1.0)
        )
    }
}

/// The pages a reader asks for, in turn: the newest, two filters, and one deep in history
/// next to the edge being pruned.
fn pages() -> Vec<FilterParams> {
    let edge = (chrono::Utc::now() - chrono::Duration::days(179)).to_rfc3339();
    vec![
        FilterParams::default(),
        FilterParams {
            event_type: Some("tenant.migrated".into()),
            ..Default::default()
        },
        FilterParams {
            actor: Some("api:cli:alice".into()),
            ..Default::default()
        },
        FilterParams {
            until: Some(edge),
            ..Default::default()
        },
    ]
}

/// Pages the feed until `stop`; returns each page's latency.
async fn read_feed(pool: deadpool_postgres::Pool, stop: Arc<AtomicBool>) -> Latencies {
    let client = pool.get().await.unwrap();
    let pages = pages();
    let mut times = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        feed::list(&**client, &pages[i % pages.len()])
            .await
            .unwrap();
        times.push(t.elapsed());
        i += 1;
    }
    times.sort();
    Latencies(times)
}

/// One prune round with `events` retention while the feed is read; prints what it did.
async fn round(
    name: &str,
    pool: &deadpool_postgres::Pool,
    leadership: &Arc<drover::schedule::Leadership>,
    events: Duration,
) {
    let settings = RetentionSettings {
        events,
        ..Default::default()
    };
    let metrics = drover::metrics::Metrics::new();
    let pruner = Pruner::new(
        pool.clone(),
        domain_sweeps(&settings),
        settings.prune_interval,
        leadership.clone(),
        metrics.pruned_rows_total.clone(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_feed(pool.clone(), stop.clone()));
    let t = Instant::now();
    let rows = pruner.round(&CancellationToken::new()).await.unwrap();
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = reader.await.unwrap();
    println!(
        "{name}: {rows} rows in {:.2?} = {:.0} rows/s; feed meanwhile {}",
        took,
        rows as f64 / took.as_secs_f64(),
        during.line()
    );
}

#[tokio::main]
async fn main() {
    let total = env_or("BENCH_EVENTS", 5_000_000);
    let (_cluster, pool) = support::control_db("drover_prune", 8).await;
    let client = pool.get().await.unwrap();

    print!("loading {total} events over 365 days... ");
    let t = Instant::now();
    client.batch_execute(SEED).await.unwrap();
    let (tenant_n, wave_n) = ((total * 9 / 10) as i32, (total / 10) as i32);
    client.execute(TENANT_EVENTS, &[&tenant_n]).await.unwrap();
    client.execute(WAVE_EVENTS, &[&wave_n]).await.unwrap();
    client
        .batch_execute("SET session_replication_role = origin")
        .await
        .unwrap();
    client
        .batch_execute(
            "VACUUM ANALYZE control_plane.tenant_events, control_plane.wave_events, control_plane.tenants",
        )
        .await
        .unwrap();
    println!("{:.1?}", t.elapsed());

    // This process takes the leader lease of its own control database.
    let leadership = Arc::new(drover::schedule::Leadership::default());
    let shutdown = CancellationToken::new();
    tokio::spawn(drover::schedule::leader::run(
        pool.clone(),
        "bench".into(),
        Duration::from_secs(15),
        leadership.clone(),
        shutdown.clone(),
    ));
    while !leadership.is_leader() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_feed(pool.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    println!(
        "\nfeed before pruning (50 per page): {}",
        reader.await.unwrap().line()
    );

    // Round 1: a retention ending where the month before the 180 d cutoff ends: whole
    // months only, and round 2 then deletes the rest of that month up to 180 d in batches.
    let boundary: f64 = client
        .query_one(
            "SELECT extract(epoch FROM now() - (date_trunc('month', now() AT TIME ZONE 'UTC') \
               - interval '6 months') AT TIME ZONE 'UTC')::float8 AS secs",
            &[],
        )
        .await
        .unwrap()
        .get("secs");
    round(
        "round 1 (whole months dropped)",
        &pool,
        &leadership,
        Duration::from_secs_f64(boundary),
    )
    .await;
    round(
        "round 2 (180 d: the edge in batches of 1,000)",
        &pool,
        &leadership,
        Duration::from_secs(180 * 86_400),
    )
    .await;
    let left: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM control_plane.tenant_events) \
               + (SELECT count(*) FROM control_plane.wave_events) AS n",
            &[],
        )
        .await
        .unwrap()
        .get("n");
    println!("events left: {left} (of {total})");
    shutdown.cancel();
}
