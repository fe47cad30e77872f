//! Preflight (README.md#cli, `drover doctor`): `drover doctor` and the `checks` of `/readyz`
//! report what drover needs from the control DB, the provisioning servers and the secrets
//! directory, each problem with what to do.

use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// A login role with CREATEDB but not CREATEROLE; returns its name and URL.
async fn role_without_createrole() -> (String, String) {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "pf_nocr_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!(
            "CREATE ROLE {name} LOGIN CREATEDB PASSWORD 'pf-pw'"
        ))
        .await
        .unwrap();
    let cfg: tokio_postgres::Config = db_url("postgres").parse().unwrap();
    let port = cfg.get_ports()[0];
    let url = format!("postgres://{name}:pf-pw@127.0.0.1:{port}/postgres");
    (name, url)
}

#[tokio::test]
async fn doctor_reports_a_provisioning_role_without_createrole_with_the_fix_and_fails() {
    let app = spawn_app().await;
    let secrets = SecretsDir::new();
    let (role, url) = role_without_createrole().await;
    let (database_url, secrets_dir) = (app.database_url.clone(), secrets.path().to_string());

    let out = tokio::task::spawn_blocking(move || {
        drover_cmd()
            .env("DROVER_DATABASE_URL", database_url)
            .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("DROVER_PROVISION_URL", url)
            .env("DROVER_SECRETS_DIR", secrets_dir)
            .arg("doctor")
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ok   control_db.version: PostgreSQL"),
        "{text}"
    );
    assert!(text.contains("ok   control_db.gen_random_uuid"), "{text}");
    assert!(text.contains("ok   secrets_dir:"), "{text}");
    assert!(
        text.contains(&format!(
            "FAIL provision_server.default: role {role} lacks CREATEROLE"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "fix: as a superuser on that server: ALTER ROLE {role} CREATEROLE"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn readyz_lists_the_preflight_checks_and_stays_ready_when_one_fails() {
    let secrets = SecretsDir::new();
    let (role, url) = role_without_createrole().await;
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_PROVISION_URL", &url),
            ("DROVER_SECRETS_DIR", secrets.path()),
        ])
        .spawn()
        .await;

    let resp = app.get_without_token("/readyz").await;

    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let checks = body["checks"].as_array().expect("checks listed");
    let outcome = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {body}"))
    };
    for name in [
        "control_db.version",
        "control_db.gen_random_uuid",
        "control_db.pg_trgm",
        "secrets_dir",
    ] {
        assert_eq!(outcome(name)["outcome"], "ok", "{body}");
    }
    let server = outcome("provision_server.default");
    assert_eq!(server["outcome"], "failed");
    assert_eq!(server["message"], format!("role {role} lacks CREATEROLE"));
    assert!(
        server["fix"].as_str().unwrap().contains("ALTER ROLE"),
        "{body}"
    );
}
