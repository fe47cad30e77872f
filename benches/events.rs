//! The event feed at a million events, and webhook delivery throughput to a local receiver.
//!
//! `cargo bench --bench events` starts a throwaway PostgreSQL, loads 1,000,000 events
//! (900,000 tenant events over 1,000 tenants, 100,000 wave events over 100 waves), then
//! prints the median and worst latency of one feed page for every filter (target < 50 ms),
//! and sends BENCH_DELIVERIES (default 5,000) webhook deliveries to a receiver in this
//! process through the real worker (target ≥ 500/s). BENCH_EVENTS changes the event count.

mod support;
use support::env_or;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::events::feed;
use drover::events::webhooks::deliver::{self, Clients, Limits, Sender};
use drover::events::webhooks::outbox::Backoff;
use drover::events::webhooks::target::Policy;
use drover::events::FilterParams;

/// Seeds `n` events quickly: triggers (and foreign keys) off for the load only.
const SEED: &str = "
SET session_replication_role = replica;
INSERT INTO control_plane.tenants (slug, display_name, db_name, db_host, db_user, db_secret_ref, status)
SELECT 't-' || g, 'Tenant ' || g, 't_' || g, 'db1', 'u_' || g, 'file:tenants/t-' || g, 'active'
FROM generate_series(1, 1000) g;
CREATE TEMP TABLE bench_waves AS SELECT g AS n, gen_random_uuid() AS id FROM generate_series(1, 100) g;
INSERT INTO control_plane.tenant_events (tenant_id, event_type, actor, payload, created_at)
SELECT t.id,
       (ARRAY['created','updated','migrated','suspended','resumed','error','migrated','migrated','updated'])[1 + g % 9],
       (ARRAY['drover','api','api:cli:alice','api:cli:bob','schedule:nightly'])[1 + g % 5],
       CASE WHEN g % 9 IN (2, 6, 7) THEN jsonb_build_object('from', 1, 'to', 2, 'wave_id', w.id::text) ELSE '{}'::jsonb END,
       now() - make_interval(secs => ($1::int - g))
FROM generate_series(1, $2::int) g
JOIN LATERAL (SELECT id FROM control_plane.tenants ORDER BY id OFFSET (g % 1000) LIMIT 1) t ON true
JOIN bench_waves w ON w.n = 1 + (g / 1000) % 100;
INSERT INTO control_plane.wave_events (wave_id, event_type, actor, payload, created_at)
SELECT w.id,
       (ARRAY['created','canary_started','canary_passed','soak_started','soak_passed','batch_started','batch_started','completed','halted','paused'])[1 + g % 10],
       CASE WHEN g % 10 = 0 THEN 'api:cli:alice' ELSE 'drover' END,
       '{}'::jsonb,
       now() - make_interval(secs => ($1::int - g * 10))
FROM generate_series(1, $2::int) g
JOIN bench_waves w ON w.n = 1 + g % 100;
SET session_replication_role = origin;
";

#[tokio::main]
async fn main() {
    let total = env_or("BENCH_EVENTS", 1_000_000);
    let deliveries = env_or("BENCH_DELIVERIES", 5_000);
    let (_cluster, pool) = support::control_db("drover_events", 16).await;
    let client = pool.get().await.unwrap();

    print!("loading {total} events... ");
    let t = Instant::now();
    let (tenant_n, wave_n) = ((total * 9 / 10) as i32, (total / 10) as i32);
    // The statements take parameters, so run them one by one.
    for stmt in SEED.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        if stmt.contains("$2") {
            let n = if stmt.contains("INTO control_plane.wave_events") {
                wave_n
            } else {
                tenant_n
            };
            client.execute(stmt, &[&(total as i32), &n]).await.unwrap();
        } else {
            client.batch_execute(stmt).await.unwrap();
        }
    }
    client
        .batch_execute("VACUUM ANALYZE control_plane.tenant_events, control_plane.wave_events, control_plane.tenants")
        .await
        .unwrap();
    println!("{:.1?}", t.elapsed());

    let wave: String = client
        .query_one(
            "SELECT wave_id::text FROM control_plane.wave_events LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let now = chrono::Utc::now();
    let hour_ago = (now - chrono::Duration::hours(1)).to_rfc3339();
    let mid = (now - chrono::Duration::seconds(total as i64 / 2)).to_rfc3339();
    let mid_plus = (now - chrono::Duration::seconds(total as i64 / 2 - 600)).to_rfc3339();
    let deep = feed::list(&**client, &FilterParams::default())
        .await
        .unwrap();
    let p = |f: fn(&mut FilterParams)| {
        let mut q = FilterParams::default();
        f(&mut q);
        q
    };
    let mut cases: Vec<(String, FilterParams)> = vec![
        ("no filter".into(), FilterParams::default()),
        (
            "type=tenant.migrated".into(),
            p(|q| q.event_type = Some("tenant.migrated".into())),
        ),
        (
            "type=tenant.suspended".into(),
            p(|q| q.event_type = Some("tenant.suspended".into())),
        ),
        (
            "type=wave.*".into(),
            p(|q| q.event_type = Some("wave.*".into())),
        ),
        (
            "type=wave.halted".into(),
            p(|q| q.event_type = Some("wave.halted".into())),
        ),
        (
            "tenant=t-500".into(),
            p(|q| q.tenant = Some("t-500".into())),
        ),
        (
            "actor=api:cli:alice".into(),
            p(|q| q.actor = Some("api:cli:alice".into())),
        ),
        (
            "actor=schedule:nightly".into(),
            p(|q| q.actor = Some("schedule:nightly".into())),
        ),
    ];
    let with = |f: FilterParams| f;
    cases.push((
        format!("wave={}", &wave[..8]),
        with(FilterParams {
            wave: Some(wave.clone()),
            ..Default::default()
        }),
    ));
    cases.push((
        "since=1h ago".into(),
        with(FilterParams {
            since: Some(hour_ago),
            ..Default::default()
        }),
    ));
    cases.push((
        "until=midpoint".into(),
        with(FilterParams {
            until: Some(mid.clone()),
            ..Default::default()
        }),
    ));
    cases.push((
        "since..until (10 min, mid-history)".into(),
        with(FilterParams {
            since: Some(mid),
            until: Some(mid_plus),
            ..Default::default()
        }),
    ));
    cases.push((
        "cursor (page 2)".into(),
        with(FilterParams {
            cursor: deep.next_cursor.clone(),
            ..Default::default()
        }),
    ));

    println!("\nfeed page latency at {total} events (50 per page; 21 runs each):");
    let mut worst_median = Duration::ZERO;
    for (name, params) in &cases {
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..21 {
            let t = Instant::now();
            n = feed::list(&**client, params).await.unwrap().items.len();
            times.push(t.elapsed());
        }
        times.sort();
        let (median, max) = (times[times.len() / 2], times[times.len() - 1]);
        worst_median = worst_median.max(median);
        println!(
            "  {name:<38} median {:>6.2} ms  max {:>6.2} ms  ({n} items){}",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            if median > Duration::from_millis(50) {
                "  OVER 50 ms"
            } else {
                ""
            }
        );
    }
    println!(
        "worst median: {:.2} ms (target < 50 ms)",
        worst_median.as_secs_f64() * 1e3
    );

    // Delivery throughput: one subscription, `deliveries` events, the real worker.
    let got = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counter = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let c = counter.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    std::env::set_var("BENCH_WEBHOOK_KEY", "bench-key");
    client
        .execute(
            "INSERT INTO control_plane.webhooks (name, url, events, secret_ref, created_by) \
             VALUES ('bench', $1, ARRAY['tenant.*'], 'env:BENCH_WEBHOOK_KEY', 'bench')",
            &[&format!("http://{addr}/hook")],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO control_plane.tenant_events (tenant_id, event_type, actor) \
             SELECT (SELECT id FROM control_plane.tenants LIMIT 1), 'updated', 'bench' FROM generate_series(1, $1::int)",
            &[&(deliveries as i32)],
        )
        .await
        .unwrap();
    let sender = Arc::new(Sender {
        pool: pool.clone(),
        secrets: drover::secrets::SecretStore::new([
            Arc::new(drover::secrets::EnvBackend) as Arc<dyn drover::secrets::SecretBackend>
        ]),
        // The receiver is local: open loopback as an in-cluster receiver would be.
        http: Clients::new(
            Duration::from_secs(10),
            Policy {
                allowed: vec!["127.0.0.0/8".parse().unwrap()],
                control_db: Vec::new(),
            },
        )
        .unwrap(),
        metrics: Arc::new(drover::metrics::Metrics::new()),
        backoff: Backoff {
            first: Duration::from_secs(5),
            cap: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(86_400),
        },
        timeout: Duration::from_secs(10),
        instance: "bench".into(),
        // The key is env:BENCH_WEBHOOK_KEY, checked before each read like any webhook key.
        scope: drover::secrets::RefScope::new(
            "BENCH_".into(),
            drover::secrets::VaultScope::Any,
            vec![],
        ),
        limits: Limits::default(),
    });
    let stop = tokio_util::sync::CancellationToken::new();
    let t = Instant::now();
    let worker = tokio::spawn(deliver::run(
        sender,
        drover::events::notify::Wake::default(),
        stop.clone(),
        Duration::from_secs(5),
    ));
    while got.load(Ordering::SeqCst) < deliveries && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = t.elapsed();
    stop.cancel();
    worker.await.unwrap();
    let delivered: i64 = client
        .query_one(
            "SELECT count(*) FROM control_plane.webhook_deliveries WHERE state = 'delivered'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let rate = got.load(Ordering::SeqCst) as f64 / took.as_secs_f64();
    println!(
        "\nwebhook deliveries: {} received, {delivered} recorded delivered in {:.2?}: {rate:.0}/s (target ≥ 500/s; 8 in flight per subscription)",
        got.load(Ordering::SeqCst),
        took
    );
}
