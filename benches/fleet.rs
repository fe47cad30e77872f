//! Fleet benchmark: how the wave engine scales out over tenant servers.
//!
//! `N` (2,000) tenant databases spread over `K` (4) PostgreSQL clusters, each cluster its
//! own "host" for drover (127.0.0.1 .. 127.0.0.K: loopback addresses, so `max_per_host`
//! counts them apart), migrated by two replicas sharing one control DB, with
//! `max_concurrency` 16 and `max_per_host` 4; then the same `N` databases on one cluster,
//! where the host cap allows 4 at a time. Each layout runs a first migration (CREATE
//! TABLE + CREATE INDEX + 100 rows) and a no-op wave, and prints tenants/s and how busy
//! the slots the host caps allow (min(16, 4 × hosts)) were.
//!
//! No target yet: the figures show the curve (does the engine keep K hosts busy, and
//! where does the time go when it does not). The control DB has a cluster of its own, so
//! it is not slowed by tenant work on the same server.
//!
//! Run: `cargo bench --bench fleet` (PostgreSQL server binaries needed; about 7.5 MB of
//! temporary disk per database, one layout at a time). `BENCH_FLEET_TENANTS` and
//! `BENCH_FLEET_CLUSTERS` change the sizes.

mod support;
use support::daemon::{create_databases, per_tenant, serve, Api, Tenants};
use support::env_or;

use std::time::{Duration, Instant};

use drover::devcluster::{Cluster, ClusterOptions};
use serde_json::{json, Value};

const V1: &str = "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\n\
                  CREATE INDEX items_name_idx ON items (name);\n\
                  INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;\n";
const CONCURRENCY: usize = 16;
const PER_HOST: usize = 4;

/// A tenant cluster listening on `127.0.0.1` and on its own loopback address `host`.
fn tenant_cluster(host: &str) -> Cluster {
    Cluster::start(ClusterOptions {
        stop_with_process: true,
        settings: vec![("listen_addresses".into(), format!("127.0.0.1,{host}"))],
        ..Default::default()
    })
    .expect("PostgreSQL starts")
}

/// Registers `n` tenants `{prefix}{i}` spread round-robin over `clusters`, labelled
/// `layout = prefix`; the databases are created first.
async fn register(api: &Api, clusters: &[(String, Cluster)], prefix: &str, n: usize) {
    let per = n.div_ceil(clusters.len());
    for (k, (_, c)) in clusters.iter().enumerate() {
        let count = per.min(n - (k * per).min(n));
        create_databases(&c.url("postgres"), &format!("{prefix}{k}x"), count).await;
    }
    for i in 0..n {
        let (k, j) = (i / per, i % per);
        let (host, c) = &clusters[k];
        api.post(
            "/v1/tenants",
            json!({"slug": format!("{prefix}{k}x{j}"), "display_name": format!("Tenant {i}"),
                   "db_name": format!("{prefix}{k}x{j}"), "db_host": host, "db_port": c.port(),
                   "db_user": "postgres", "db_secret_ref": "file:tenants/pw", "status": "active",
                   "labels": {"layout": prefix}}),
        )
        .await;
    }
}

/// Runs one wave over the layout's tenants and prints its figures.
async fn wave(
    api: &Api,
    control: &tokio_postgres::Client,
    layout: &str,
    step: &str,
    hosts: usize,
) -> f64 {
    let body = json!({"selector": {"labels": {"layout": layout}}, "target_version": 1,
                      "batch_size": 100000, "max_concurrency": CONCURRENCY, "max_per_host": PER_HOST,
                      "soak_seconds": 0, "canary": {"count": 0}});
    let (took, w) = api.wave(body).await;
    assert_eq!(w["state"], "completed", "{w}");
    let n = w["counts"]["succeeded"].as_i64().unwrap() as f64;
    let t: Tenants = per_tenant(control, &w).await;
    let allowed = CONCURRENCY.min(PER_HOST * hosts);
    // `busy` is measured against max_concurrency; the host caps allow `allowed` of it.
    let busy = t.busy * CONCURRENCY as f64 / allowed as f64;
    let rate = n / took.as_secs_f64();
    println!(
        "  {:<7} {:>2} host(s), {:<6} {:>7.2} s {:>7.0} tenants/s   slots busy {:>3.0} % of {allowed}   per tenant median {:.1} ms, p90 {:.1} ms; created → first claim {:.0} ms, last record → completed {:.0} ms",
        layout,
        hosts,
        step,
        took.as_secs_f64(),
        rate,
        busy * 100.0,
        t.median_ms,
        t.p90_ms,
        t.start_lag * 1000.0,
        t.tail * 1000.0
    );
    rate
}

#[tokio::main]
async fn main() {
    let n = env_or("BENCH_FLEET_TENANTS", 2000);
    let k = env_or("BENCH_FLEET_CLUSTERS", 4).clamp(1, 200);
    let control_cluster = Cluster::start(ClusterOptions {
        stop_with_process: true,
        ..Default::default()
    })
    .expect("PostgreSQL starts");
    control_cluster
        .psql("postgres", "CREATE DATABASE drover_bench")
        .unwrap();
    let control_url = control_cluster.url("drover_bench");

    let work = std::env::temp_dir().join(format!("drover-fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(work.join("migrations")).unwrap();
    std::fs::create_dir_all(work.join("secrets/tenants")).unwrap();
    std::fs::write(work.join("migrations/V1__items.sql"), V1).unwrap();
    std::fs::write(work.join("secrets/tenants/pw"), "trust-auth\n").unwrap();

    let env = [("DROVER_WORKER_SLOTS", "16")];
    let (replica_a, api) = serve(&control_url, &work, &env).await;
    let (replica_b, _) = serve(&control_url, &work, &env).await;
    let (control, conn) = tokio_postgres::connect(&control_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);

    println!("drover fleet benchmark: {n} tenants, two replicas, max_concurrency {CONCURRENCY}, max_per_host {PER_HOST}");
    let mut rates: Vec<(String, Value)> = Vec::new();
    for (layout, hosts) in [("spread", k), ("one", 1)] {
        let started = Instant::now();
        let clusters: Vec<(String, Cluster)> = (1..=hosts)
            .map(|h| {
                let host = format!("127.0.0.{h}");
                let c = tenant_cluster(&host);
                (host, c)
            })
            .collect();
        register(&api, &clusters, layout, n).await;
        println!(
            "  {layout}: {n} databases on {hosts} cluster(s) created and registered in {:.1?}",
            started.elapsed()
        );
        let first = wave(&api, &control, layout, "first", hosts).await;
        let noop = wave(&api, &control, layout, "no-op", hosts).await;
        rates.push((layout.into(), json!({"first": first, "noop": noop})));
        // The databases go with their clusters, so only one layout's are on disk at once.
        drop(clusters);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (spread, one) = (&rates[0].1, &rates[1].1);
    println!(
        "  {k} hosts / 1 host, tenants/s: first {:.2}x, no-op {:.2}x (the host cap alone allows {:.0}x)",
        spread["first"].as_f64().unwrap() / one["first"].as_f64().unwrap(),
        spread["noop"].as_f64().unwrap() / one["noop"].as_f64().unwrap(),
        CONCURRENCY.min(PER_HOST * k) as f64 / PER_HOST as f64
    );
    drop((replica_a, replica_b));
    let _ = std::fs::remove_dir_all(&work);
}
