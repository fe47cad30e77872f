//! Tenant search (`GET /v1/tenants?q=`) at 100,000 tenants.
//!
//! `cargo bench --bench search` starts a throwaway PostgreSQL, migrates a control database
//! (V14 creates pg_trgm and the trigram indexes), loads BENCH_TENANTS (default 100,000)
//! tenants, then prints the median and worst latency of one 100-tenant page through
//! `Registry::list` for queries from rare to common (target < 50 ms), first with the
//! trigram indexes and then without them (the fallback where pg_trgm is not available).

mod support;
use support::env_or;

use std::time::{Duration, Instant};

use drover::registry::{ListFilter, Registry};

const RUNS: usize = 30;

/// Slugs and names from a small vocabulary, so some queries match one tenant and others
/// thousands.
const SEED: &str = "
INSERT INTO control_plane.tenants (slug, display_name, db_name, db_host, db_user, db_secret_ref, status)
SELECT 'acct-' || g || '-' || substr(md5(g::text), 1, 6),
       initcap((ARRAY['north','blue','rapid','quiet','silver','green','bright','iron'])[1 + g % 8]) || ' ' ||
       initcap((ARRAY['river','harbor','summit','forge','meadow','signal','canyon','orbit','lantern','atlas'])[1 + (g / 8) % 10]) || ' ' ||
       (ARRAY['Corp','Ltd','GmbH','Labs','Studio'])[1 + (g / 80) % 5] || ' ' || g,
       't_' || g, 'db1', 'u_' || g, 'file:tenants/acct-' || g, 'active'
FROM generate_series(1, $1::int) g";

async fn measure(registry: &Registry, q: &str) -> (Duration, Duration, usize) {
    let filter = ListFilter {
        q: Some(q.to_string()),
        limit: Some(100),
        ..Default::default()
    };
    let mut times = Vec::with_capacity(RUNS);
    let mut found = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let page = registry.list(&filter).await.expect("search runs");
        times.push(t.elapsed());
        found = page.items.len();
    }
    times.sort();
    (times[RUNS / 2], times[RUNS - 1], found)
}

async fn report(registry: &Registry, title: &str) {
    println!("{title}");
    println!(
        "  {:<28} {:>6} {:>10} {:>10}",
        "q", "page", "median", "worst"
    );
    for q in [
        "acct-77777-",       // one tenant, by slug
        "quiet harbor",      // one name in 80, by display name
        "lantern",           // one tenant in 10
        "labs 4242",         // one tenant, by the words and number of its name
        "nothing-like-this", // no match
        "ab",                // two characters: no trigram to use
    ] {
        let (median, worst, found) = measure(registry, q).await;
        println!("  {q:<28} {found:>6} {median:>10.2?} {worst:>10.2?}");
    }
}

#[tokio::main]
async fn main() {
    let total = env_or("BENCH_TENANTS", 100_000);
    let (_cluster, pool) = support::control_db("drover_search", 4).await;
    let client = pool.get().await.unwrap();

    print!("loading {total} tenants... ");
    let t = Instant::now();
    client.execute(SEED, &[&(total as i32)]).await.unwrap();
    client
        .batch_execute("VACUUM ANALYZE control_plane.tenants")
        .await
        .unwrap();
    println!("{:.1?}", t.elapsed());

    let registry = Registry::new(pool.clone());
    report(&registry, "with pg_trgm indexes (target < 50 ms):").await;
    client
        .batch_execute(
            "DROP INDEX control_plane.tenants_slug_trgm_idx, control_plane.tenants_display_name_trgm_idx; \
             ANALYZE control_plane.tenants",
        )
        .await
        .unwrap();
    report(&registry, "without them (pg_trgm unavailable):").await;
}
