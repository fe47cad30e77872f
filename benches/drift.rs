//! Schema drift: the fingerprint of one tenant and a scan of a fleet.
//!
//! `cargo bench --bench drift` starts a throwaway PostgreSQL, builds a 50-table schema
//! (each table with a serial key, a foreign key, a check, an enum column, a default, two
//! indexes one of them partial, a function and a trigger), then prints
//! - the fingerprint time of that schema (one catalog statement and the hashing; 200
//!   runs): median and p99 (target: median < 20 ms);
//! - a scan of BENCH_TENANTS (default 1,000) copies of it at concurrency 8, as the scan
//!   task runs it (connect, history and catalog read pipelined, close, record in the
//!   control DB), then the answer of every tenant against the reference: wall time and
//!   tenants/s (target ≥ 100/s);
//! - the control DB's storage per tenant (its row, and its share of the schemas stored
//!   once per distinct fingerprint).

mod support;
use support::env_or;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const RUNS: usize = 200;

fn schema() -> String {
    let mut sql = String::from(
        "CREATE TYPE state AS ENUM ('new', 'open', 'closed');
         CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
         CREATE TABLE refinery_schema_history (version int4 PRIMARY KEY, name varchar(255), applied_on varchar(255), checksum varchar(255));
         INSERT INTO refinery_schema_history VALUES (1, 'base', '2026-01-01T00:00:00Z', '1');\n",
    );
    for i in 0..50 {
        sql.push_str(&format!(
            "CREATE TABLE t{i} (id bigserial PRIMARY KEY, account_id int NOT NULL REFERENCES accounts (id),
                 state state NOT NULL DEFAULT 'new', amount numeric(12, 2) CHECK (amount >= 0),
                 note text DEFAULT 'none', created_at timestamptz NOT NULL DEFAULT now());
             CREATE INDEX ON t{i} (account_id);
             CREATE INDEX t{i}_open_idx ON t{i} (created_at) WHERE state <> 'closed';
             CREATE FUNCTION t{i}_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := 'touched {i}'; RETURN NEW; END $$;
             CREATE TRIGGER t{i}_touch BEFORE UPDATE ON t{i} FOR EACH ROW EXECUTE FUNCTION t{i}_touch();\n"
        ));
    }
    sql
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let total = env_or("BENCH_TENANTS", 1_000);
    let (cluster, pool) = support::control_db("drover_drift", 10).await;
    cluster
        .psql("postgres", "CREATE DATABASE drift_template")
        .unwrap();
    let template_url = cluster.url("drift_template");
    connect(&template_url)
        .await
        .batch_execute(&schema())
        .await
        .unwrap();

    let client = connect(&template_url).await;
    let fp = drover::drift::fingerprint::take(&client).await.unwrap();
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        drover::drift::fingerprint::take(&client).await.unwrap();
        times.push(t.elapsed());
    }
    drop(client);
    times.sort();
    println!(
        "fingerprint of a 50-table schema ({} objects): median {:.2?}, p99 {:.2?} ({RUNS} runs)",
        fp.objects.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );

    print!("creating {total} tenant databases... ");
    let t = Instant::now();
    let control = pool.get().await.unwrap();
    let mut tenants = Vec::with_capacity(total);
    for i in 0..total {
        let name = format!("drift_t{i}");
        cluster
            .psql(
                "postgres",
                &format!("CREATE DATABASE {name} TEMPLATE drift_template"),
            )
            .unwrap();
        let row = control
            .query_one(
                "INSERT INTO control_plane.tenants (slug, display_name, db_name, db_host, db_user, db_secret_ref, status) \
                 VALUES ($1, $1, $2, 'localhost', 'postgres', 'env:UNUSED', 'active') RETURNING id",
                &[&format!("t-{i}"), &name],
            )
            .await
            .unwrap();
        let id: uuid::Uuid = row.get("id");
        tenants.push((id, cluster.url(&name)));
    }
    drop(control);
    println!("{:.1?}", t.elapsed());

    let slots = Arc::new(Semaphore::new(8));
    let started = Instant::now();
    let mut jobs = JoinSet::new();
    for (id, url) in tenants {
        let permit = slots.clone().acquire_owned().await.unwrap();
        let pool = pool.clone();
        jobs.spawn(async move {
            let _permit = permit;
            let client = connect(&url).await;
            let (history, fp) = futures_util::future::join(
                drover::migrate::tenant::read_history(&client),
                drover::drift::fingerprint::take(&client),
            )
            .await;
            drop(client);
            let version = history.unwrap().iter().map(|h| h.0).max();
            drover::drift::cohorts::save(&pool, id, version, &fp.unwrap())
                .await
                .unwrap();
        });
        while jobs.try_join_next().is_some() {}
    }
    while jobs.join_next().await.is_some() {}
    drover::drift::cohorts::reconcile(&pool).await.unwrap();
    let wall = started.elapsed();
    println!(
        "scan of {total} tenants at concurrency 8: {wall:.2?}, {:.0} tenants/s",
        total as f64 / wall.as_secs_f64()
    );

    let control = pool.get().await.unwrap();
    let row = control
        .query_one(
            "SELECT pg_total_relation_size('control_plane.tenant_drift')::bigint AS tenants, \
                    pg_total_relation_size('control_plane.drift_schemas')::bigint AS schemas, \
                    (SELECT count(*) FROM control_plane.drift_schemas) AS distinct_schemas",
            &[],
        )
        .await
        .unwrap();
    let (per_tenant, schemas, distinct): (i64, i64, i64) = (
        row.get("tenants"),
        row.get("schemas"),
        row.get("distinct_schemas"),
    );
    println!(
        "control DB storage: {:.0} bytes per tenant (tenant_drift with its indexes), plus {} KB for {} distinct schema(s) shared by all",
        per_tenant as f64 / total as f64,
        schemas / 1024,
        distinct
    );
}
