//! Migration safety around the canary: who blocked a tenant's lock timeout, per-host
//! concurrency that backs off and recovers, and dry runs that measure what they touch.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{connect, history, wave_app, MigrationsDir, SecretsDir, TestApp, WAVE_DONE};

async fn target_of(app: &TestApp, id: &str, slug: &str) -> Value {
    let targets: Vec<Value> = app.get_json(&format!("/v1/waves/{id}/targets")).await;
    targets
        .into_iter()
        .find(|t| t["slug"] == slug)
        .unwrap_or_else(|| panic!("no target {slug}"))
}

async fn error_events(app: &TestApp, slug: &str) -> Vec<Value> {
    let page: Value = app
        .get_json(&format!("/v1/tenants/{slug}/events?limit=100"))
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "error")
        .map(|e| e["payload"].clone())
        .collect()
}

fn accounts_migrations() -> MigrationsDir {
    MigrationsDir::new(&[
        ("V1__t.sql", "CREATE TABLE accounts (id int);"),
        ("V2__col.sql", "ALTER TABLE accounts ADD COLUMN email text;"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_blocked_by_a_session_names_that_session_in_its_error_detail_and_event() {
    let (migrations, secrets) = (accounts_migrations(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "fx", 2, 0).await;
    let first = app.start_wave(json!({"target_version": 1})).await;
    app.wait_for_wave_state(&first, &["completed"]).await;
    let sep = if tenants[0].url.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut holder = connect(&format!("{}{sep}application_name=blocker", tenants[0].url)).await;
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let timeouts_before = app.metric("drover_lock_timeouts_total").await;

    let id = app
        .start_wave(
            json!({"lock_timeout_ms": 300, "max_attempts": 1, "max_failures": 5,
               "lock_retries": {"attempts": 2, "first_lock_timeout_ms": 50, "first_pause_ms": 20}}),
        )
        .await;
    let wave = app
        .wait_for_wave_state_within(&id, WAVE_DONE, Duration::from_secs(30))
        .await;
    tx.rollback().await.unwrap();

    assert_eq!(wave["counts"]["failed"], 1, "{wave:#}");
    assert_eq!(wave["counts"]["succeeded"], 1, "{wave:#}");
    assert_eq!(
        wave["plan"]["settings"]["lock_retries"],
        json!({"attempts": 2, "first_lock_timeout_ms": 50, "first_pause_ms": 20})
    );
    let target = target_of(&app, &id, "fx-000").await;
    assert_eq!(target["error_kind"], "timeout", "{target:#}");
    let error = target["error"].as_str().unwrap();
    assert!(
        error.contains("55P03") && error.contains("blocker"),
        "{error}"
    );
    let blockers = target["detail"]["blockers"].as_array().expect("blockers");
    assert_eq!(blockers.len(), 1, "{target:#}");
    let b = &blockers[0];
    assert_eq!(b["application_name"], "blocker");
    assert_eq!(b["state"], "idle in transaction");
    assert_eq!(b["user"], "postgres");
    assert!(b["pid"].as_i64().unwrap() > 0);
    assert!(b["xact_age_ms"].as_i64().unwrap() > 0);
    assert!(
        b["query"]
            .as_str()
            .unwrap()
            .starts_with("LOCK TABLE accounts"),
        "{b}"
    );
    let events = error_events(&app, "fx-000").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["blockers"][0]["application_name"], "blocker");
    assert_eq!(history(&tenants[0].url).await, vec![1]);
    // Three attempts (two short, one at lock_timeout_ms), each a lock timeout.
    assert_eq!(
        app.metric("drover_lock_timeouts_total").await - timeouts_before,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_released_during_the_retry_schedule_lets_the_tenant_succeed_in_one_attempt() {
    let (migrations, secrets) = (accounts_migrations(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "rl", 1, 0).await;
    let first = app.start_wave(json!({"target_version": 1})).await;
    app.wait_for_wave_state(&first, &["completed"]).await;
    let mut holder = connect(&tenants[0].url).await;
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let id = app.start_wave(json!({"lock_timeout_ms": 5000, "max_attempts": 1,
               "lock_retries": {"attempts": 3, "first_lock_timeout_ms": 50, "first_pause_ms": 200}}),
    )
    .await;
    let timed_out = crate::helpers::wait_until(Duration::from_secs(10), || async {
        app.metric("drover_lock_timeouts_total").await > 0.0
    })
    .await;
    tx.rollback().await.unwrap();
    let wave = app
        .wait_for_wave_state_within(&id, WAVE_DONE, Duration::from_secs(30))
        .await;

    assert!(timed_out, "the first short attempt never timed out");
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["counts"]["succeeded"], 1, "{wave:#}");
    assert_eq!(target_of(&app, &id, "rl-000").await["attempts"], 1);
    assert_eq!(history(&tenants[0].url).await, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_retries_out_of_range_are_refused_with_422() {
    let (migrations, secrets) = (accounts_migrations(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "lr", 1, 0).await;

    let resp = app
        .create_wave(&json!({"lock_retries": {"attempts": 0}}))
        .await;

    assert_eq!(resp.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = resp.json().await.unwrap();
    assert!(body.to_string().contains("lock_retries"), "{body}");
}

async fn host_limit(app: &TestApp, id: &str) -> Value {
    let w: Value = app.get_json(&format!("/v1/waves/{id}")).await;
    let hosts = w["hosts"].as_array().unwrap_or_else(|| panic!("{w:#}"));
    assert_eq!(hosts.len(), 1, "{w:#}");
    hosts[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosts_limit_halves_while_its_tenants_time_out_and_grows_back_as_they_succeed() {
    let (migrations, secrets) = (accounts_migrations(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "hl", 10, 0).await;
    let first = app
        .start_wave(json!({"target_version": 1, "max_concurrency": 10}))
        .await;
    app.wait_for_wave_state(&first, &["completed"]).await;
    let mut holders = Vec::new();
    for t in &tenants[..2] {
        let c = connect(&t.url).await;
        // Held until the client is dropped (its connection closes, the transaction ends).
        c.batch_execute("BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        holders.push(c);
    }

    let id = app
        .start_wave(
            json!({"max_concurrency": 4, "max_per_host": 4, "batch_size": 100, "soak_seconds": 0,
               "lock_timeout_ms": 100, "max_attempts": 50, "max_failures": 100,
               "lock_retries": {"attempts": 1, "first_lock_timeout_ms": 20, "first_pause_ms": 0}}),
        )
        .await;
    let lowered = crate::helpers::wait_until(Duration::from_secs(30), || async {
        let h = host_limit(&app, &id).await;
        h["limit"] == 1 && h["lowered"].as_i64().unwrap() >= 2
    })
    .await;
    let host = host_limit(&app, &id).await["host"]
        .as_str()
        .unwrap()
        .to_string();
    let sample = format!("drover_host_concurrency_limit{{db_host=\"{host}\"}}");
    let gauge_low = crate::helpers::wait_until(Duration::from_secs(15), || async {
        app.metric(&sample).await == 1.0
    })
    .await;
    drop(holders);
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    let after = host_limit(&app, &id).await;

    assert!(
        lowered,
        "the limit never dropped: {:#}",
        host_limit(&app, &id).await
    );
    assert!(gauge_low, "the gauge never showed the lowered limit");
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["counts"]["succeeded"], 10, "{wave:#}");
    assert_eq!(after["max"], 4);
    assert!(
        after["limit"].as_i64().unwrap() > 1,
        "the limit did not grow back after the clean finishes: {after:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_the_tenants_with_the_largest_touched_tables_and_the_slowest_runs() {
    let (migrations, secrets) = (accounts_migrations(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "sz", 3, 0).await;
    let first = app.start_wave(json!({"target_version": 1})).await;
    app.wait_for_wave_state(&first, &["completed"]).await;
    for (t, rows) in tenants.iter().zip([10_000, 100, 200_000]) {
        connect(&t.url)
            .await
            .batch_execute(&format!(
                "INSERT INTO accounts SELECT g FROM generate_series(1, {rows}) g"
            ))
            .await
            .unwrap();
    }
    // The slow one: its V2 waits on a row lock for a while, then gets it.
    let slow = connect(&tenants[1].url).await;
    slow.batch_execute("BEGIN; SELECT * FROM accounts LIMIT 1 FOR SHARE")
        .await
        .unwrap();

    let id = app
        .start_wave(json!({"dry_run": true, "lock_timeout_ms": 10_000}))
        .await;
    // Another session: pg_stat_activity is a snapshot for the length of a transaction.
    let observer = connect(&tenants[1].url).await;
    let waiting = crate::helpers::wait_until(Duration::from_secs(20), || async {
        let q = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
        observer.query_one(q, &[]).await.unwrap().get::<_, i64>(0) > 0
    })
    .await;
    // Keep it waiting long enough to be the slowest by far, then let it through.
    tokio::time::sleep(Duration::from_millis(600)).await;
    drop(slow);
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert!(waiting, "the dry run never waited for the row lock");
    let report = &wave["dry_run_report"];
    assert_eq!(report["would_succeed"], 3, "{wave:#}");
    let slugs = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["slug"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        slugs(&report["largest"]),
        vec!["sz-002", "sz-000", "sz-001"]
    );
    let sizes: Vec<i64> = report["largest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["size_bytes"].as_i64().unwrap())
        .collect();
    assert!(
        sizes[0] > sizes[1] && sizes[1] > sizes[2] && sizes[2] > 0,
        "{sizes:?}"
    );
    assert_eq!(slugs(&report["slowest"])[0], "sz-001", "{report:#}");
    assert!(
        report["slowest"][0]["migrate_ms"].as_i64().unwrap() >= 500,
        "{report:#}"
    );
    let target = target_of(&app, &id, "sz-002").await;
    assert_eq!(
        target["detail"]["tables"][0]["name"], "accounts",
        "{target:#}"
    );
    assert_eq!(target["detail"]["size_bytes"], json!(sizes[0]));
}
