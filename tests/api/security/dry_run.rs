//! A dry run can never commit: a migration file that ends the dry run's transaction
//! itself, however it hides the statement, is never executed, and nothing it names
//! appears on the tenant; should one ever slip through, the check after each file sees
//! that the transaction is no longer the one the dry run opened.

use drover::migrate::dry_run::{Guard, Session};
use serde_json::{json, Value};

use crate::helpers::{
    connect, fresh_database, wave_app, MigrationsDir, SecretsDir, TenantDb, TestApp, WAVE_DONE,
};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_executes_files_whose_transaction_words_are_only_quoted_or_nested_and_commits_nothing(
) {
    let (_app, wave, tenant) = dry_run(&[
        ("V1__things.sql", "CREATE TABLE things (id int, note text);"),
        (
            "V2__atomic.sql",
            "CREATE FUNCTION things_count() RETURNS bigint LANGUAGE sql\n\
             BEGIN ATOMIC\n  SELECT count(*) FROM things;\nEND;\n\
             CREATE FUNCTION touch() RETURNS void LANGUAGE plpgsql AS $fn$\n\
             BEGIN\n  -- COMMIT would be refused here; it is only text to the dry run\n\
               PERFORM 1;\nEND\n$fn$;",
        ),
        (
            "V3__quoted.sql",
            "INSERT INTO things VALUES (1, E'it\\'s; COMMIT; --');\n\
             ALTER TABLE things ADD COLUMN price$eur$ int;\n\
             SAVEPOINT before_cleanup;\nDELETE FROM things;\nROLLBACK TO SAVEPOINT before_cleanup;\n\
             SELECT 1 AS done$eur$;",
        ),
    ])
    .await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    let report = &wave["dry_run_report"];
    assert_eq!(report["would_succeed"], 1, "{report:#}");
    assert_eq!(report["not_run"], 0, "{report:#}");
    assert!(!exists(&tenant, "things").await, "the dry run committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_runs_transaction_check_sees_a_commit_a_rollback_and_a_changed_reading_of_text() {
    let url = fresh_database("guard").await;
    let mut client = connect(&url).await;

    let tx = client.transaction().await.unwrap();
    let (guard, opened) = Guard::open(&tx).await.unwrap();
    tx.batch_execute(
        "SAVEPOINT s; CREATE TABLE t (a int); ROLLBACK TO SAVEPOINT s; RELEASE SAVEPOINT s",
    )
    .await
    .unwrap();
    let after_savepoints = guard.check(&tx).await.unwrap();
    tx.batch_execute("SET standard_conforming_strings = off")
        .await
        .unwrap();
    let strings_off = guard.check(&tx).await.unwrap();
    tx.batch_execute("RESET standard_conforming_strings; COMMIT AND CHAIN")
        .await
        .unwrap();
    let chained = guard.check(&tx).await.unwrap();
    tx.rollback().await.unwrap();

    let tx = client.transaction().await.unwrap();
    let (guard, _) = Guard::open(&tx).await.unwrap();
    tx.batch_execute("ROLLBACK; CREATE TABLE u (a int)")
        .await
        .unwrap();
    let rolled_back = guard.check(&tx).await.unwrap();
    let _ = tx.rollback().await;

    assert_eq!(opened, Session::Same);
    assert_eq!(after_savepoints, Session::Same);
    assert_eq!(
        strings_off,
        Session::Misreads("standard_conforming_strings is off".into())
    );
    assert_eq!(chained, Session::Escaped);
    assert_eq!(rolled_back, Session::Escaped);
}
