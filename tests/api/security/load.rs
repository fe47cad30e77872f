//! Unauthenticated requests cost a control-DB query each: 4,000 requests with made-up bearer
//! tokens ran 2,636 token-table index scans in 1.45 s; and a client could hold connections
//! open by never finishing its headers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover::devcluster::{Cluster, ClusterOptions};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{connect, tenant_body, SecretsDir, TestApp};

const RESOLVER_TOKEN: &str = "load-resolver-token-0123456789abcdef";
const FLOOD: usize = 4_000;
const CLIENTS: usize = 40;

/// A cluster that counts every statement (`pg_stat_statements`), and a control database on
/// it with the extension's view.
async fn counting_cluster() -> (Cluster, String) {
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::start(ClusterOptions {
            stop_with_process: true,
            settings: vec![(
                "shared_preload_libraries".into(),
                "pg_stat_statements".into(),
            )],
            ..ClusterOptions::default()
        })
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot start a PostgreSQL with pg_stat_statements: {e}"));
    connect(&cluster.url("postgres"))
        .await
        .batch_execute("CREATE DATABASE control")
        .await
        .unwrap();
    let url = cluster.url("control");
    connect(&url)
        .await
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    (cluster, url)
}

/// Calls so far of each statement run in the control database, by statement text.
async fn statement_calls(db: &tokio_postgres::Client) -> HashMap<String, i64> {
    db.query(
        "SELECT s.query, sum(s.calls)::bigint AS calls FROM pg_stat_statements s \
         JOIN pg_database d ON d.oid = s.dbid \
         WHERE d.datname = current_database() AND s.query NOT LIKE '%pg_stat_statements%' \
         GROUP BY s.query",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("query"), r.get("calls")))
    .collect()
}

/// A token that looks like a real one and was never issued.
fn made_up_token() -> String {
    use ring::rand::SecureRandom;
    let mut random = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut random).unwrap();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("drv_{hex}")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Resolves `acme` until `done`; every latency.
async fn resolve_until(app: &TestApp, done: &AtomicBool) -> Vec<Duration> {
    let mut took = Vec::new();
    while !done.load(Ordering::SeqCst) {
        let at = Instant::now();
        let status = app
            .with_token(RESOLVER_TOKEN)
            .resolve("acme")
            .await
            .status();
        took.push(at.elapsed());
        assert_eq!(status, StatusCode::OK);
    }
    took.sort();
    took
}

/// 4,000 requests with made-up tokens from [`CLIENTS`] clients at once; their statuses.
async fn flood(app: &TestApp) -> Vec<StatusCode> {
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (http, url) = (app.http.clone(), format!("{}/v1/tenants", app.base()));
        clients.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..FLOOD / CLIENTS {
                let resp = http.get(&url).bearer_auth(made_up_token()).send().await;
                statuses.push(resp.unwrap().status());
            }
            statuses
        });
    }
    let mut all = Vec::new();
    while let Some(statuses) = clients.join_next().await {
        all.extend(statuses.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_thousand_requests_with_made_up_tokens_run_no_control_db_query_per_request() {
    let (_cluster, control) = counting_cluster().await;
    let secrets = SecretsDir::new();
    secrets.put("tenants/acme", "pw");
    let app = TestApp::builder()
        .control_db(&control)
        .env("DROVER_SECRETS_DIR", secrets.path())
        .env("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN)
        .spawn()
        .await;
    assert_eq!(
        app.create_tenant(&tenant_body("acme")).await.status(),
        StatusCode::CREATED
    );
    let db = connect(&control).await;
    // Resolution alone first (this also warms its caches), for comparison.
    let mut idle = Vec::new();
    for _ in 0..200 {
        let at = Instant::now();
        let status = app
            .with_token(RESOLVER_TOKEN)
            .resolve("acme")
            .await
            .status();
        idle.push(at.elapsed());
        assert_eq!(status, StatusCode::OK);
    }
    idle.sort();

    let before = statement_calls(&db).await;
    let started = Instant::now();
    let flood_done = Arc::new(AtomicBool::new(false));
    let (statuses, during) = tokio::join!(
        async {
            let statuses = flood(&app).await;
            flood_done.store(true, Ordering::SeqCst);
            statuses
        },
        resolve_until(&app, &flood_done)
    );
    let elapsed = started.elapsed();
    let after = statement_calls(&db).await;

    let ran: HashMap<&String, i64> = after
        .iter()
        .map(|(q, n)| (q, n - before.get(q).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let token_table: i64 = ran
        .iter()
        .filter(|(q, _)| q.contains("access_tokens"))
        .map(|(_, n)| n)
        .sum();
    let (busiest, busiest_runs) = ran
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(q, n)| (q.chars().take(80).collect::<String>(), *n))
        .unwrap_or_default();
    let seconds = elapsed.as_secs() as i64 + 1;
    println!(
        "{FLOOD} requests with made-up tokens in {elapsed:.2?} ({:.0}/s): {token_table} token-table \
         statements (the copy's reload, about one a second); busiest statement ran {busiest_runs} times \
         ({busiest}); resolution p50 {:.2?} p99 {:.2?} over {} resolves during the flood \
         (alone: p50 {:.2?} p99 {:.2?})",
        FLOOD as f64 / elapsed.as_secs_f64(),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        during.len(),
        percentile(&idle, 0.5),
        percentile(&idle, 0.99),
    );

    assert_eq!(statuses.len(), FLOOD);
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "every made-up token is refused"
    );
    assert!(
        token_table <= 2 * seconds + 2,
        "{token_table} statements on the token table in {elapsed:?}: more than its reload"
    );
    assert!(
        busiest_runs < (FLOOD / 10) as i64,
        "a statement ran {busiest_runs} times during {FLOOD} requests: {busiest}"
    );
    assert!(!during.is_empty(), "resolution went on during the flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_cut_off_and_the_connection_cap_holds_others_back(
) {
    let app = TestApp::builder()
        .env("DROVER_HTTP_HEADER_TIMEOUT", "1s")
        .env("DROVER_HTTP_MAX_CONNECTIONS", "2")
        .spawn()
        .await;
    // Two slow clients take both connections, each sending half a request.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: drover\r\n")
            .await
            .unwrap();
        slow.push(c);
    }
    let started = Instant::now();

    // A third client waits until a slot is free, then is served.
    let third = app.get_without_token("/healthz").await.status();
    let third_waited = started.elapsed();
    let mut cut_off = 0;
    for c in &mut slow {
        let mut buf = [0u8; 1024];
        // The server closes the connection (maybe after a 408): read to the end.
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        cut_off += usize::from(closed.is_ok());
    }
    let all_cut_off = started.elapsed();

    assert_eq!(third, StatusCode::OK);
    assert!(
        third_waited >= Duration::from_millis(800),
        "served after {third_waited:?}: the cap let a third connection in"
    );
    assert_eq!(
        cut_off, 2,
        "a client that never finished its headers kept its connection"
    );
    assert!(all_cut_off < Duration::from_secs(4), "took {all_cut_off:?}");
}
