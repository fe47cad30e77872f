//! A dry run can never commit: a migration file that ends the dry run's transaction
//! itself, however it hides the statement, is never executed, and nothing it names
//! appears on the tenant.

use serde_json::{json, Value};

use crate::helpers::{connect, wave_app, MigrationsDir, SecretsDir, TenantDb, TestApp, WAVE_DONE};

/// Whether relation `name` exists on the tenant.
async fn exists(t: &TenantDb, name: &str) -> bool {
    connect(&t.url)
        .await
        .query_one("SELECT to_regclass($1) IS NOT NULL AS found", &[&name])
        .await
        .unwrap()
        .get("found")
}

/// Dry-runs every file on one fresh tenant; the finished wave and the tenant.
async fn dry_run(files: &[(&str, &str)]) -> (TestApp, Value, TenantDb) {
    let migrations = MigrationsDir::new(files);
    let secrets = SecretsDir::new();
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenant = app.register_tenants(&secrets, "sec", 1, 0).await.remove(0);
    let id = app.start_wave(json!({"dry_run": true})).await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    (app, wave, tenant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_commits_nothing_when_a_nested_comment_hides_a_commit() {
    let (_app, wave, tenant) = dry_run(&[
        ("V1__things.sql", "CREATE TABLE things (id int);"),
        (
            "V2__hidden_commit.sql",
            "/* /* */ */ COMMIT;\nCREATE TABLE leaked (id int);",
        ),
    ])
    .await;

    assert!(
        !exists(&tenant, "leaked").await,
        "the dry run committed: {wave:#}"
    );
    assert!(!exists(&tenant, "things").await, "the dry run committed V1");
    assert_eq!(wave["state"], "completed", "{wave:#}");
    let report = &wave["dry_run_report"];
    assert_eq!(report["not_run"], 1, "{report:#}");
    assert_eq!(report["skipped"][0]["file"], "V2__hidden_commit.sql");
    let message = report["skipped"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("V2__hidden_commit.sql") && message.contains("COMMIT"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_commits_nothing_when_an_earlier_file_turns_standard_conforming_strings_off() {
    // With standard_conforming_strings off, '\'' is an escaped quote: the server would
    // read the COMMIT below as a statement, where PostgreSQL's default reading (and
    // drover's) sees one string.
    let (_app, wave, tenant) = dry_run(&[
        (
            "V1__old_strings.sql",
            "CREATE TABLE things (id int);\nSET standard_conforming_strings = off;",
        ),
        (
            "V2__smuggled_commit.sql",
            "SELECT '\\'\n' ; COMMIT; CREATE TABLE leaked (id int); -- ';",
        ),
    ])
    .await;

    assert!(
        !exists(&tenant, "leaked").await,
        "the dry run committed: {wave:#}"
    );
    assert!(!exists(&tenant, "things").await, "the dry run committed V1");
    assert_eq!(wave["state"], "completed", "{wave:#}");
    let report = &wave["dry_run_report"];
    assert_eq!(report["not_run"], 1, "{report:#}");
    assert_eq!(report["skipped"][0]["file"], "V2__smuggled_commit.sql");
    let message = report["skipped"][0]["message"].as_str().unwrap();
    assert!(message.contains("standard_conforming_strings"), "{message}");
}
