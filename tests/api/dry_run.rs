//! Fleet dry-runs: every pending migration run and rolled back on every tenant, failures
//! grouped by error, nothing written anywhere; quarantine of the failing tenants by the
//! real wave that follows.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    connect, drover_cmd, history, pg_dump_schema, wave_app, MigrationsDir, SecretsDir, TenantDb,
    TestApp, ADMIN_TOKEN, WAVE_DONE,
};

/// Everything a dry run must leave alone in one tenant: its schema, its rows, its
/// history, what the registry records and the tenant's events.
#[derive(Debug, PartialEq)]
struct Snapshot {
    schema: String,
    users: i64,
    history: Vec<i32>,
    schema_version: Value,
    events: i64,
}

async fn snapshot(app: &TestApp, t: &TenantDb) -> Snapshot {
    let users: i64 = connect(&t.url)
        .await
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    let tenant: Value = app.get_tenant(&t.slug).await.json().await.unwrap();
    let events: i64 = app
        .control_db()
        .await
        .query_one(
            "SELECT count(*) FROM control_plane.tenant_events e \
             JOIN control_plane.tenants t ON t.id = e.tenant_id WHERE t.slug = $1",
            &[&t.slug],
        )
        .await
        .unwrap()
        .get(0);
    Snapshot {
        schema: pg_dump_schema(&t.url),
        users,
        history: history(&t.url).await,
        schema_version: tenant["schema_version"].clone(),
        events,
    }
}

async fn run_cli(server: String, args: Vec<&'static str>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        drover_cmd()
            .env("DROVER_SERVER", server)
            .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_names_exactly_the_two_tenants_a_new_not_null_breaks_changes_nothing_and_the_real_wave_quarantines_them(
) {
    // Arrange: 20 tenants at V1 with users; two of them hold a user without an email.
    let migrations = MigrationsDir::new(&[(
        "V1__users.sql",
        "CREATE TABLE users (id int PRIMARY KEY, email text);",
    )]);
    let secrets = SecretsDir::new();
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "dr", 20, 2).await;
    let v1 = app
        .start_wave(json!({"soak_seconds": 0, "batch_size": 20}))
        .await;
    app.wait_for_wave_state_within(&v1, &["completed"], Duration::from_secs(120))
        .await;
    let broken = ["dr-007", "dr-013"];
    for t in &tenants {
        let missing = if broken.contains(&t.slug.as_str()) {
            ", (3, NULL)"
        } else {
            ""
        };
        connect(&t.url)
            .await
            .batch_execute(&format!(
                "INSERT INTO users VALUES (1, 'a@{0}.example'), (2, 'b@{0}.example'){missing}",
                t.slug
            ))
            .await
            .unwrap();
    }
    migrations.put(
        "V2__email_required.sql",
        "-- drover:allow setting-not-nullable-field the test tables hold a few rows\n\
         ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n\
         -- drover:allow require-concurrent-index-creation the test tables hold a few rows\n\
         CREATE UNIQUE INDEX users_email ON users (email);",
    );
    let mut before = BTreeMap::new();
    for t in &tenants {
        before.insert(t.slug.clone(), snapshot(&app, t).await);
    }

    // Act: the dry run through the CLI, as a release engineer would start it.
    let watched = run_cli(
        app.base(),
        vec![
            "waves",
            "start",
            "--dry-run",
            "--max-concurrency",
            "4",
            "--watch",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&watched.stderr).to_string();
    let stdout = String::from_utf8_lossy(&watched.stdout).to_string();
    let id = stderr
        .split_whitespace()
        .skip_while(|w| *w != "run")
        .nth(1)
        .unwrap_or_else(|| panic!("no wave id in {stderr}"))
        .to_string();
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    // Assert: exactly the two, one line for both, with the error and the file.
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["dry_run"], true);
    let report = &wave["dry_run_report"];
    assert_eq!(report["would_succeed"], 18, "{report:#}");
    assert_eq!(report["would_fail"], 2, "{report:#}");
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "one group for one error: {report:#}");
    assert_eq!(failures[0]["count"], 2);
    assert_eq!(failures[0]["code"], "23502");
    assert_eq!(failures[0]["file"], "V2__email_required.sql");
    assert_eq!(failures[0]["slugs"], json!(broken));
    assert!(
        failures[0]["message"]
            .as_str()
            .unwrap()
            .contains("\"email\""),
        "{report:#}"
    );
    assert_eq!(
        watched.status.code(),
        Some(1),
        "a dry run with failures exits 1"
    );
    assert!(
        stdout.contains("2 × fails V2__email_required.sql 23502")
            && stdout.contains("dr-007, dr-013"),
        "{stdout}"
    );
    let targets: Vec<Value> = app
        .get_json(&format!("/v1/waves/{id}/targets?state=failed"))
        .await;
    assert_eq!(targets[0]["detail"]["file"], "V2__email_required.sql");
    assert_eq!(targets[0]["detail"]["version"], 2);
    for t in &tenants {
        assert_eq!(
            snapshot(&app, t).await,
            before[&t.slug],
            "the dry run changed {}",
            t.slug
        );
    }

    // Act: the real wave, quarantining what the dry run found.
    let real = app.start_wave(json!({"exclude_failed_of": id, "soak_seconds": 0, "batch_size": 10, "max_concurrency": 4}),
    )
    .await;
    let wave = app
        .wait_for_wave_state_within(&real, WAVE_DONE, Duration::from_secs(120))
        .await;

    // Assert: the 18 moved on, the 2 are listed as skipped with the reason, untouched.
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["counts"]["succeeded"], 18);
    assert_eq!(wave["counts"]["skipped"], 2);
    assert_eq!(wave["exclude_failed_of"], id.as_str());
    let skipped: Vec<(&str, &str)> = wave["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["slug"].as_str().unwrap(), s["error"].as_str().unwrap()))
        .collect();
    assert_eq!(
        skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
        broken.to_vec()
    );
    assert!(
        skipped
            .iter()
            .all(|(_, why)| why.contains("quarantined") && why.contains("23502")),
        "{skipped:?}"
    );
    for t in &tenants {
        let expected = if broken.contains(&t.slug.as_str()) {
            vec![1]
        } else {
            vec![1, 2]
        };
        assert_eq!(history(&t.url).await, expected, "{}", t.slug);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_transaction_file_is_listed_never_executed_and_no_history_table_appears() {
    let migrations = MigrationsDir::new(&[
        ("V1__things.sql", "CREATE TABLE things (id int);"),
        (
            "V2__things_idx.sql",
            "-- drover:no-transaction\nCREATE INDEX CONCURRENTLY things_idx ON things (id);",
        ),
        ("V3__more.sql", "ALTER TABLE things ADD COLUMN name text;"),
    ]);
    let secrets = SecretsDir::new();
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "nt", 3, 0).await;
    let events_before = app.event_rows().await;

    let id = app.start_wave(json!({"dry_run": true})).await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    let report = &wave["dry_run_report"];
    assert_eq!(report["not_run"], 3, "{report:#}");
    let skipped = &report["skipped"][0];
    assert_eq!(skipped["count"], 3);
    assert_eq!(skipped["file"], "V2__things_idx.sql");
    assert!(skipped["message"]
        .as_str()
        .unwrap()
        .contains("no-transaction"));
    let targets: Vec<Value> = app.get_json(&format!("/v1/waves/{id}/targets")).await;
    assert_eq!(targets[0]["detail"]["checked"], json!([1]));
    assert_eq!(
        targets[0]["detail"]["not_run"],
        json!(["V2__things_idx.sql", "V3__more.sql"])
    );
    for t in &tenants {
        let c = connect(&t.url).await;
        let (history, things): (Option<String>, Option<String>) = {
            let r = c
                .query_one(
                    "SELECT to_regclass('refinery_schema_history')::text, to_regclass('things')::text",
                    &[],
                )
                .await
                .unwrap();
            (r.get(0), r.get(1))
        };
        assert_eq!((history, things), (None, None), "{}", t.slug);
    }
    assert_eq!(app.event_rows().await, events_before, "no tenant event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_needs_a_completed_dry_run() {
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let secrets = SecretsDir::new();
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "qd", 1, 0).await;
    let real = app.start_wave(json!({"soak_seconds": 0})).await;
    app.wait_for_wave_state(&real, WAVE_DONE).await;

    let not_dry = app.create_wave(&json!({"exclude_failed_of": real})).await;
    let unknown = app
        .create_wave(&json!({"exclude_failed_of": "00000000-0000-0000-0000-000000000001"}))
        .await;
    let with_analysis = app
        .create_wave(&json!({"dry_run": true, "analysis": [{"name": "ok", "type": "sql", "query": "SELECT true"}]})).await;

    assert_eq!(not_dry.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = not_dry.json().await.unwrap();
    assert_eq!(body["error"]["field"], "exclude_failed_of");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not a dry run"));
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(with_analysis.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
