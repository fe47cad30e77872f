//! The lint gate of `POST /v1/waves` (README.md#migration-lint): an unacknowledged error
//! finding refuses the wave with the findings; an acknowledged one is stored in the plan and
//! the timeline.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{drover_cmd, wave_app, MigrationsDir, SecretsDir, ADMIN_TOKEN, WAVE_DONE};

fn risky_migrations() -> MigrationsDir {
    MigrationsDir::new(&[
        (
            "V1__accounts.sql",
            "CREATE TABLE accounts (id int PRIMARY KEY, email text);",
        ),
        (
            "V2__email_index.sql",
            "CREATE INDEX accounts_email ON accounts (email);",
        ),
        (
            "V3__drop_email.sql",
            "ALTER TABLE accounts DROP COLUMN email;",
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_with_an_unacknowledged_lint_error_is_refused_and_an_acknowledged_one_runs() {
    let (migrations, secrets) = (risky_migrations(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "li", 3, 0).await;
    let first = app
        .start_wave(json!({"target_version": 1, "soak_seconds": 0}))
        .await;
    app.wait_for_wave_state(&first, &["completed"]).await;

    let refused = app.create_wave(&json!({"soak_seconds": 0})).await;
    let status = refused.status();
    let body: Value = refused.json().await.unwrap();
    let accepted = app
        .start_wave(
            json!({"soak_seconds": 0, "acknowledge": ["require-concurrent-index-creation"]}),
        )
        .await;
    let wave = app.wait_for_wave_state(&accepted, WAVE_DONE).await;
    let timeline = app.wave_events(&accepted).await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body:#}");
    assert_eq!(body["error"]["code"], "lint_failed");
    let findings = body["error"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{body:#}");
    assert_eq!(findings[0]["rule"], "require-concurrent-index-creation");
    assert_eq!(findings[0]["file"], "V2__email_index.sql");
    assert!(findings[0]["fix"]
        .as_str()
        .unwrap()
        .contains("CONCURRENTLY"));
    assert_eq!(wave["state"], "completed", "{wave:#}");
    let lint = &wave["plan"]["lint"];
    assert_eq!(
        lint["acknowledged"][0]["rule"],
        "require-concurrent-index-creation"
    );
    assert_eq!(lint["warnings"][0]["rule"], "ban-drop-column", "{lint:#}");
    assert_eq!(
        timeline[0].2["lint_acknowledged"],
        json!(["require-concurrent-index-creation"])
    );
    assert_eq!(timeline[0].2["lint_warnings"], 1);

    let (server, id) = (app.base(), accepted.clone());
    let shown = tokio::task::spawn_blocking(move || {
        drover_cmd()
            .env("DROVER_SERVER", server)
            .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["waves", "show", &id])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(
        stdout.contains(
            "lint     acknowledged require-concurrent-index-creation at V2__email_index.sql:1"
        ),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_a_rule_that_does_not_exist_is_422_naming_it() {
    let (migrations, secrets) = (risky_migrations(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "lu", 1, 0).await;

    let resp = app
        .create_wave(&json!({"acknowledge": ["no-such-rule"]}))
        .await;

    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["field"], "acknowledge");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-rule"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drover_migrations_lint_exits_1_on_an_error_and_prints_json_on_request() {
    let migrations = risky_migrations();
    let dir = migrations.path().to_string();

    let out = tokio::task::spawn_blocking(move || {
        drover_cmd()
            .args([
                "migrations",
                "lint",
                &dir,
                "--after",
                "1",
                "--format",
                "json",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["files"], 2);
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["require-concurrent-index-creation", "ban-drop-column"]
    );
}
