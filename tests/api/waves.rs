//! Migration waves in one daemon: canary gate, failure budget, retries, timeouts, drift,
//! no-transaction files, operator actions and the fleet report.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    connect, counted_migrations_dir, history, side_effects, wave_app, MigrationsDir, SecretsDir,
    TestApp, WAVE_DONE,
};

async fn failed_slugs(app: &TestApp, id: &str) -> Vec<String> {
    let targets: Vec<Value> = app
        .get_json(&format!("/v1/waves/{id}/targets?state=failed"))
        .await;
    targets
        .iter()
        .map(|t| t["slug"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_migrates_canaries_then_batches_and_records_every_tenant() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "ok", 7, 2).await;

    let id = app
        .start_wave(json!({"batch_size": 2, "soak_seconds": 0, "max_concurrency": 3}))
        .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["target_version"], 3);
    assert_eq!(wave["counts"]["succeeded"], 7);
    let phases: Vec<(String, i64)> = wave["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["total"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        phases,
        vec![
            ("canary".into(), 2),
            ("batch 1".into(), 2),
            ("batch 2".into(), 2),
            ("batch 3".into(), 1)
        ]
    );
    for t in &tenants {
        assert_eq!(history(&t.url).await, vec![1, 2, 3]);
        assert_eq!(side_effects(&t.url).await, vec![1, 2, 3]);
        let got: Value = app.get_tenant(&t.slug).await.json().await.unwrap();
        assert_eq!(got["schema_version"], 3);
    }
    let db = app.control_db().await;
    let payload: Value = db
        .query_one(
            "SELECT payload FROM control_plane.tenant_events WHERE event_type = 'migrated' LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(payload["from"], Value::Null);
    assert_eq!(payload["to"], 3);
    assert_eq!(payload["wave_id"], id.as_str());
    assert!(payload["duration_ms"].is_number());
    let batch_started: bool = db
        .query_one(
            "SELECT min(started_at) FILTER (WHERE phase = 1) >= max(finished_at) FILTER (WHERE phase = 0) \
             FROM control_plane.wave_targets",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        batch_started,
        "no batch tenant started before every canary finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_failure_halts_before_any_batch_tenant_is_touched() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "cn", 6, 2).await;
    crate::helpers::plant_widgets_clash(&tenants[1].url).await;

    let id = app
        .start_wave(json!({"batch_size": 2, "soak_seconds": 0}))
        .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(wave["state"], "halted", "{wave:#}");
    let reason = wave["halt_reason"].as_str().unwrap();
    assert!(
        reason.contains("cn-001") && reason.contains("42P07"),
        "{reason}"
    );
    assert_eq!(failed_slugs(&app, &id).await, vec!["cn-001"]);
    for t in &tenants[2..] {
        assert!(
            history(&t.url).await.is_empty(),
            "batch tenant {} was touched",
            t.slug
        );
    }
    let err: Value = app.get_json("/v1/tenants/cn-001/events").await;
    assert_eq!(err["items"][0]["event_type"], "error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wave_halts_when_the_third_of_three_broken_tenants_spends_a_budget_of_two() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "bg", 20, 0).await;
    for i in [2, 5, 8] {
        crate::helpers::plant_widgets_clash(&tenants[i].url).await;
    }

    let id = app
        .start_wave(json!({"batch_size": 20, "max_concurrency": 1, "max_failures": 2}))
        .await;
    let wave = app
        .wait_for_wave_state_within(&id, WAVE_DONE, Duration::from_secs(90))
        .await;

    assert_eq!(wave["state"], "halted", "{wave:#}");
    assert_eq!(wave["counts"]["failed"], 3);
    assert_eq!(
        wave["counts"]["succeeded"], 6,
        "tenants after the third failure were not started"
    );
    assert!(wave["halt_reason"]
        .as_str()
        .unwrap()
        .contains("failure budget"));
    assert_eq!(
        failed_slugs(&app, &id).await,
        vec!["bg-002", "bg-005", "bg-008"]
    );
    assert!(history(&tenants[19].url).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_halted_wave_after_the_fix_runs_only_the_tenants_not_yet_succeeded() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "rs", 4, 1).await;
    crate::helpers::plant_widgets_clash(&tenants[0].url).await;
    let id = app.start_wave(json!({"soak_seconds": 0})).await;
    app.wait_for_wave_state(&id, &["halted"]).await;

    connect(&tenants[0].url)
        .await
        .batch_execute("DROP TABLE widgets")
        .await
        .unwrap();
    let resumed = app.resume_wave(&id).await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(resumed.status(), StatusCode::OK);
    assert_eq!(wave["state"], "completed", "{wave:#}");
    for t in &tenants {
        assert_eq!(side_effects(&t.url).await, vec![1, 2, 3], "{}", t.slug);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_server_is_down_is_retried_and_succeeds_once_it_is_back() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let mut other = tokio::task::spawn_blocking(|| {
        drover::devcluster::Cluster::start(drover::devcluster::ClusterOptions {
            stop_with_process: true,
            ..Default::default()
        })
        .unwrap()
    })
    .await
    .unwrap();
    other.psql("postgres", "CREATE DATABASE t_remote").unwrap();
    secrets.put("tenants/pw", "x");
    let mut body = crate::helpers::tenant_body("remote");
    body["db_host"] = json!("127.0.0.1");
    body["db_port"] = json!(other.port());
    body["db_name"] = json!("t_remote");
    body["db_user"] = json!("postgres");
    body["db_secret_ref"] = json!("file:tenants/pw");
    app.create_tenant(&body).await;
    other = tokio::task::spawn_blocking(move || {
        other.stop_server().unwrap();
        other
    })
    .await
    .unwrap();

    let id = app.start_wave(json!({"max_attempts": 30})).await;
    let saw_retry = crate::helpers::wait_until(Duration::from_secs(20), || async {
        let w = app.get_wave(&id).await;
        w["counts"]["pending"] == 1
            && app_target_error(&app, &id)
                .await
                .is_some_and(|(k, _)| k == "retryable")
    })
    .await;
    let other = tokio::task::spawn_blocking(move || {
        other.start_server().unwrap();
        other
    })
    .await
    .unwrap();
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert!(
        saw_retry,
        "the refused connection was not classified retryable"
    );
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(side_effects(&other.url("t_remote")).await, vec![1, 2, 3]);
}

async fn app_target_error(app: &TestApp, id: &str) -> Option<(String, String)> {
    let t: Vec<Value> = app
        .req(Method::GET, &format!("/v1/waves/{id}/targets"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let t = t.first()?;
    Some((
        t["error_kind"].as_str()?.to_string(),
        t["error"].as_str()?.to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_by_another_session_gives_that_tenant_a_lock_timeout_and_the_wave_does_not_hang(
) {
    let migrations = MigrationsDir::new(&[
        ("V1__t.sql", "CREATE TABLE accounts (id int);"),
        ("V2__col.sql", "ALTER TABLE accounts ADD COLUMN email text;"),
    ]);
    let secrets = SecretsDir::new();
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "lk", 2, 0).await;
    let first = app.start_wave(json!({"target_version": 1})).await;
    app.wait_for_wave_state(&first, &["completed"]).await;
    let mut holder = connect(&tenants[0].url).await;
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let id = app
        .start_wave(json!({"lock_timeout_ms": 300, "max_attempts": 2, "max_failures": 5}))
        .await;
    let wave = app
        .wait_for_wave_state_within(&id, WAVE_DONE, Duration::from_secs(30))
        .await;
    tx.rollback().await.unwrap();

    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["counts"]["failed"], 1);
    assert_eq!(wave["counts"]["succeeded"], 1);
    let (kind, error) = app_target_error_of(&app, &id, "lk-000").await;
    assert_eq!(kind, "timeout");
    assert!(error.contains("55P03"), "{error}");
    assert_eq!(history(&tenants[0].url).await, vec![1]);
}

async fn app_target_error_of(app: &TestApp, id: &str, slug: &str) -> (String, String) {
    let t: Vec<Value> = app.get_json(&format!("/v1/waves/{id}/targets")).await;
    let t = t.iter().find(|t| t["slug"] == slug).unwrap();
    (
        t["error_kind"].as_str().unwrap_or("").to_string(),
        t["error"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_migration_is_drift_and_nothing_runs_on_that_tenant() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "dr", 2, 0).await;
    let first = app.start_wave(json!({"target_version": 1})).await;
    app.wait_for_wave_state(&first, &["completed"]).await;
    connect(&tenants[0].url)
        .await
        .batch_execute("UPDATE refinery_schema_history SET checksum = '42' WHERE version = 1")
        .await
        .unwrap();

    let id = app.start_wave(json!({"max_failures": 1})).await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(wave["counts"]["failed"], 1, "{wave:#}");
    let (kind, error) = app_target_error_of(&app, &id, "dr-000").await;
    assert_eq!(kind, "drift");
    assert!(error.contains("V1") && error.contains("edited"), "{error}");
    assert_eq!(
        history(&tenants[0].url).await,
        vec![1],
        "nothing ran on the drifted tenant"
    );
    assert_eq!(side_effects(&tenants[0].url).await, vec![1]);
    assert_eq!(history(&tenants[1].url).await, vec![1, 2, 3]);
    let fleet: Value = app.get_json("/v1/fleet").await;
    assert_eq!(fleet["drifted"][0]["slug"], "dr-000");
    assert_eq!(fleet["drifted"][0]["issue"]["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_transaction_create_index_concurrently_works_and_a_failing_one_needs_attention() {
    let migrations = MigrationsDir::new(&[
        ("V1__t.sql", "CREATE TABLE accounts (id int, email text);"),
        (
            "V2__email_idx.sql",
            "-- drover:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON accounts (email);\n",
        ),
    ]);
    let secrets = SecretsDir::new();
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "nt", 2, 0).await;
    let first = app.start_wave(json!({"target_version": 1})).await;
    app.wait_for_wave_state(&first, &["completed"]).await;
    connect(&tenants[1].url)
        .await
        .batch_execute("INSERT INTO accounts VALUES (1, 'a@x'), (2, 'a@x')")
        .await
        .unwrap();

    let id = app.start_wave(json!({"max_failures": 1})).await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(wave["counts"]["succeeded"], 1, "{wave:#}");
    assert_eq!(history(&tenants[0].url).await, vec![1, 2]);
    let valid: bool = connect(&tenants[0].url)
        .await
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_email_key'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid);
    let (kind, error) = app_target_error_of(&app, &id, "nt-001").await;
    assert_eq!(kind, "needs_attention");
    assert!(
        error.contains("invalid index") && error.contains("accounts_email_key"),
        "{error}"
    );
    assert_eq!(history(&tenants[1].url).await, vec![1]);
    let fleet: Value = app.get_json("/v1/fleet").await;
    assert_eq!(fleet["needs_attention"][0]["slug"], "nt-001");

    // A retry must not skip the broken index silently.
    connect(&tenants[1].url)
        .await
        .batch_execute("DELETE FROM accounts WHERE id = 2")
        .await
        .unwrap();
    let retry = app
        .start_wave(json!({"selector": {"slugs": ["nt-001"]}}))
        .await;
    app.wait_for_wave_state(&retry, WAVE_DONE).await;
    let (_, again) = app_target_error_of(&app, &retry, "nt-001").await;
    assert!(again.contains("drop them"), "{again}");
    assert_eq!(history(&tenants[1].url).await, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_can_pause_resume_and_abort_and_bad_requests_are_422() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "op", 3, 1).await;
    let bad_target = app.create_wave(&json!({"target_version": 9})).await;
    let unknown = app.create_wave(&json!({"batchsize": 9})).await;
    let missing = app
        .create_wave(&json!({"selector": {"slugs": ["nobody"]}}))
        .await;
    let id = app.start_wave(json!({"soak_seconds": 3600})).await;
    app.wait_for_wave_state_within(&id, &["soaking"], Duration::from_secs(30))
        .await;

    let paused: Value = app.pause_wave(&id).await.json().await.unwrap();
    let pause_again = app.pause_wave(&id).await;
    let resumed: Value = app.resume_wave(&id).await.json().await.unwrap();
    let aborted: Value = app.abort_wave(&id).await.json().await.unwrap();
    let list: Vec<Value> = app.get_json("/v1/waves").await;

    assert_eq!(bad_target.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(paused["state"], "paused");
    assert_eq!(pause_again.status(), StatusCode::CONFLICT);
    assert_eq!(resumed["state"], "soaking");
    assert_eq!(aborted["state"], "aborted");
    assert_eq!(aborted["counts"]["skipped"], 2);
    assert_eq!(aborted["counts"]["succeeded"], 1);
    assert_eq!(list[0]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_over_200_up_to_date_tenants_touches_no_schema_and_completes_quickly() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[("DROVER_WORKER_SLOTS", "16")]).await;
    let template = crate::helpers::fresh_database("tmpl").await;
    let tdb = template.rsplit('/').next().unwrap().to_string();
    // Migrate the template once through a one-tenant wave, then clone it 200 times.
    secrets.put("tenants/pw", "x");
    let (host, port) = crate::helpers::server_host_port();
    let mut body = crate::helpers::tenant_body("template");
    body["db_host"] = json!(host);
    body["db_port"] = json!(port);
    body["db_name"] = json!(tdb);
    body["db_user"] = json!("postgres");
    body["db_secret_ref"] = json!("file:tenants/pw");
    app.create_tenant(&body).await;
    let w = app.start_wave(json!({})).await;
    app.wait_for_wave_state_within(&w, &["completed"], Duration::from_secs(30))
        .await;
    app.delete_tenant("template").await;
    let admin = connect(&crate::helpers::db_url("postgres")).await;
    let mut slugs = Vec::new();
    for i in 0..200 {
        let name = format!("{tdb}_c{i}");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE \"{tdb}\""))
            .await
            .unwrap();
        let slug = format!("up-{i:03}");
        body["slug"] = json!(slug);
        body["db_name"] = json!(name);
        assert_eq!(app.create_tenant(&body).await.status(), StatusCode::CREATED);
        slugs.push((slug, crate::helpers::db_url(&name)));
    }

    let started = std::time::Instant::now();
    let id = app
        .start_wave(json!({"batch_size": 200, "max_concurrency": 16}))
        .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    let took = started.elapsed();

    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["counts"]["succeeded"], 200);
    for (_, url) in slugs.iter().step_by(20) {
        assert_eq!(side_effects(url).await, vec![1, 2, 3], "nothing re-ran");
    }
    println!("no-op wave over 200 up-to-date tenants: {took:?}");
}

fn cli(app: &TestApp) -> std::process::Command {
    let mut cmd = crate::helpers::drover_cmd();
    cmd.env("DROVER_SERVER", app.base())
        .env("DROVER_ADMIN_TOKEN", crate::helpers::ADMIN_TOKEN);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_start_watch_exits_zero_on_completion_and_non_zero_on_a_halt() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "cli", 3, 1).await;
    let mut ok = cli(&app);
    ok.args(["waves", "start", "--target", "2", "--soak", "0s", "--watch"]);
    let completed = tokio::task::spawn_blocking(move || ok.output().unwrap())
        .await
        .unwrap();
    connect(&tenants[0].url)
        .await
        .batch_execute(
            "CREATE TABLE colour_clash (x int); ALTER TABLE widgets ADD COLUMN colour int",
        )
        .await
        .unwrap();
    let mut bad = cli(&app);
    bad.args(["waves", "start", "--soak", "0s", "--watch"]);
    let halted = tokio::task::spawn_blocking(move || bad.output().unwrap())
        .await
        .unwrap();
    let mut fleet = cli(&app);
    fleet.arg("fleet");
    let fleet = tokio::task::spawn_blocking(move || fleet.output().unwrap())
        .await
        .unwrap();

    assert!(
        completed.status.success(),
        "{}",
        String::from_utf8_lossy(&completed.stderr)
    );
    assert!(String::from_utf8_lossy(&completed.stdout).contains("completed: 3 succeeded"));
    assert_eq!(halted.status.code(), Some(1));
    let err = String::from_utf8_lossy(&halted.stderr);
    assert!(err.contains("halted") && err.contains("cli-000"), "{err}");
    let fleet = String::from_utf8_lossy(&fleet.stdout);
    assert!(
        fleet.contains("V2") && fleet.contains("latest version  V3"),
        "{fleet}"
    );
}

#[test]
fn migrations_list_shows_checksums_and_fails_naming_a_file_refinery_would_skip() {
    let dir = MigrationsDir::new(&[
        ("V1__ok.sql", "SELECT 1;"),
        ("V2__idx.sql", "-- drover:no-transaction\nSELECT 2;"),
    ]);
    let ok = crate::helpers::drover_cmd()
        .args(["migrations", "list"])
        .env("DROVER_MIGRATIONS_DIR", dir.path())
        .output()
        .unwrap();
    dir.put("V3__add-col.sql", "SELECT 3;");
    let bad = crate::helpers::drover_cmd()
        .args(["migrations", "list"])
        .env("DROVER_MIGRATIONS_DIR", dir.path())
        .output()
        .unwrap();

    let table = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success());
    assert!(
        table.contains("V1") && table.contains("V2") && table.contains("yes"),
        "{table}"
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("V3__add-col.sql"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_halted_in_a_later_batch_reruns_earlier_batch_failures_on_resume_before_completing()
{
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "rb", 6, 0).await;
    for i in [1, 3] {
        crate::helpers::plant_widgets_clash(&tenants[i].url).await;
    }
    let id = app
        .start_wave(json!({"batch_size": 2, "max_concurrency": 1, "max_failures": 1}))
        .await;
    let halted = app.wait_for_wave_state(&id, WAVE_DONE).await;
    assert_eq!(halted["state"], "halted", "{halted:#}");
    assert_eq!(halted["current_phase"], 2);

    for i in [1, 3] {
        connect(&tenants[i].url)
            .await
            .batch_execute("DROP TABLE widgets")
            .await
            .unwrap();
    }
    app.resume_wave(&id).await;
    let wave = app
        .wait_for_wave_state(&id, &["completed", "halted", "aborted"])
        .await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["counts"]["succeeded"], 6);
    assert_eq!(wave["counts"]["pending"], 0);
    for t in &tenants {
        assert_eq!(side_effects(&t.url).await, vec![1, 2, 3], "{}", t.slug);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percentage_budget_counts_the_tenants_started_so_far_not_the_whole_wave() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "pc", 10, 0).await;
    for t in &tenants[..2] {
        crate::helpers::plant_widgets_clash(&t.url).await;
    }

    // 2 of 10 is 20 % of the wave but 100 % of the first batch of 2.
    let id = app
        .start_wave(json!({"batch_size": 2, "max_failure_percent": 25}))
        .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(wave["state"], "halted", "{wave:#}");
    assert_eq!(wave["counts"]["succeeded"], 0, "no later batch started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_wave_over_tenants_of_an_unfinished_wave_is_refused_with_409() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "ov", 3, 1).await;
    let first = app.start_wave(json!({"soak_seconds": 3600})).await;
    app.wait_for_wave_state_within(&first, &["soaking"], Duration::from_secs(30))
        .await;

    let second = app.create_wave(&json!({"canary": {"count": 0}})).await;

    assert_eq!(second.status(), StatusCode::CONFLICT);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wave_overlap");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&first),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_runner_died_max_attempts_times_is_failed_not_handed_on_forever() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "ex", 2, 0).await;
    let id = app
        .start_wave(json!({"max_attempts": 3, "max_failures": 5, "max_concurrency": 1}))
        .await;
    // As if three replicas in a row had died holding ex-001: running, lease long gone.
    app.control_db()
        .await
        .batch_execute(&format!(
            "UPDATE control_plane.wave_targets SET state = 'running', attempts = 3, lease_owner = 'dead#1', \
             lease_expires_at = now() - interval '1 minute' WHERE wave_id = '{id}' AND slug = 'ex-001'"
        ))
        .await
        .unwrap();

    let wave = app
        .wait_for_wave_state_within(&id, WAVE_DONE, Duration::from_secs(30))
        .await;

    assert_eq!(wave["counts"]["failed"], 1, "{wave:#}");
    let (_, error) = app_target_error_of(&app, &id, "ex-001").await;
    assert!(error.contains("stopped 3 times"), "{error}");
    let events = app.event_types("ex-001").await;
    assert_eq!(events[0], "error");
}

#[tokio::test]
async fn waves_created_at_the_same_moment_over_the_same_tenants_never_both_start() {
    let secrets = SecretsDir::new();
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
        ])
        .spawn()
        .await;
    app.register_tenants(&secrets, "race", 3, 0).await;
    let body = json!({"soak_seconds": 0, "canary": {"count": 0}});

    let answers = futures_util::future::join_all((0..8).map(|_| app.create_wave(&body))).await;

    let statuses: Vec<u16> = answers.into_iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_refinery_runner_agrees_with_every_history_row_a_wave_writes() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "rf", 2, 0).await;
    let first = app
        .start_wave(json!({"target_version": 1, "soak_seconds": 0}))
        .await;
    app.wait_for_wave_state(&first, WAVE_DONE).await;

    let next = app.start_wave(json!({"soak_seconds": 0})).await;
    let wave = app.wait_for_wave_state(&next, WAVE_DONE).await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    let files = refinery::load_sql_migrations(migrations.path()).unwrap();
    for t in &tenants {
        let (mut client, conn) = tokio_postgres::connect(&t.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        // Divergent (other name or checksum) or missing rows would be errors here, and a
        // row refinery cannot parse would not come back at all.
        let report = refinery::Runner::new(&files)
            .set_abort_divergent(true)
            .set_abort_missing(true)
            .run_async(&mut client)
            .await
            .unwrap();
        assert!(report.applied_migrations().is_empty(), "{}", t.slug);
        let applied = refinery::Runner::new(&files)
            .get_applied_migrations_async(&mut client)
            .await
            .unwrap();
        assert_eq!(
            applied.iter().map(|m| m.version()).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(side_effects(&t.url).await, vec![1, 2, 3]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_failing_mid_run_keeps_the_files_before_it_and_names_itself() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "mr", 1, 0).await;
    // V1 applies, V2's CREATE TABLE widgets clashes: refinery commits file by file.
    crate::helpers::plant_widgets_clash(&tenants[0].url).await;

    let id = app.start_wave(json!({"soak_seconds": 0})).await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(wave["state"], "halted", "{wave:#}");
    assert_eq!(history(&tenants[0].url).await, vec![1]);
    assert_eq!(side_effects(&tenants[0].url).await, vec![1]);
    let targets: Vec<Value> = app
        .get_json(&format!("/v1/waves/{id}/targets?state=failed"))
        .await;
    let error = targets[0]["error"].as_str().unwrap();
    assert!(error.starts_with("V2: 42P07"), "{error}");
    // The failed transaction was rolled back and the lock given back: a retry can run.
    let c = connect(&tenants[0].url).await;
    let free: bool = c
        .query_one(
            "SELECT pg_try_advisory_lock($1)",
            &[&drover::migrate::tenant::TENANT_LOCK_KEY],
        )
        .await
        .unwrap()
        .get(0);
    assert!(free);
}
