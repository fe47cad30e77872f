//! Validation-only creation (README.md#tenant-lifecycle): `POST /v1/tenants?dry_run=true`
//! and `drover tenants create --dry-run` compute the names, the placement, the checks and
//! the steps, and write nothing: not in the control DB, not on the provisioning server,
//! not in the secrets directory.

use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// A non-superuser admin role (CREATEDB CREATEROLE) on the harness cluster; its URL.
async fn admin_role() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "dr_admin_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let su = connect(&db_url("postgres")).await;
    su.batch_execute(&format!(
        "CREATE ROLE {name} LOGIN CREATEDB CREATEROLE PASSWORD 'adm-pw'"
    ))
    .await
    .unwrap();
    let (_, port) = server_host_port();
    format!("postgres://{name}:adm-pw@127.0.0.1:{port}/postgres")
}

fn slug(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Rows of every control-plane table a create writes to, in one list.
async fn control_rows(app: &TestApp) -> Vec<i64> {
    let db = app.control_db().await;
    let mut out = Vec::new();
    for table in [
        "tenants",
        "tenant_events",
        "tenant_limits",
        "tenant_aliases",
        "control_events",
        "webhook_deliveries",
    ] {
        let sql = format!("SELECT count(*) AS n FROM control_plane.{table}");
        out.push(db.query_one(&sql, &[]).await.unwrap().get("n"));
    }
    out
}

/// Roles and databases on the harness cluster whose names contain `fragment`.
async fn server_objects(fragment: &str) -> (i64, i64) {
    let su = connect(&db_url("postgres")).await;
    let like = format!("%{fragment}%");
    let roles: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1",
            &[&like],
        )
        .await
        .unwrap()
        .get(0);
    let dbs: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE $1",
            &[&like],
        )
        .await
        .unwrap()
        .get(0);
    (roles, dbs)
}

async fn dry_run(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    let resp = app.post_json("/v1/tenants?dry_run=true", body).await;
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioning_dry_run_returns_names_placement_and_steps_and_writes_nothing() {
    let secrets = SecretsDir::new();
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_PROVISION_URL", &admin_role().await),
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
            ("DROVER_PORTAL_URL_TEMPLATE", "https://{slug}.example.com"),
        ])
        .spawn()
        .await;
    let (s, taken) = (slug("dry"), slug("taken"));
    let ident = format!("t_{}", s.replace('-', "_"));
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!(
            "CREATE ROLE t_{} NOLOGIN",
            taken.replace('-', "_")
        ))
        .await
        .unwrap();
    let rows_before = control_rows(&app).await;
    let objects_before = server_objects(&s.replace('-', "_")).await;

    let (status, plan) = dry_run(&app, &json!({"slug": s, "provision": true})).await;
    let mut cmd = drover_cmd();
    cmd.env("DROVER_SERVER", app.base())
        .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(["tenants", "create", &s, "--provision", "--dry-run"]);
    let cli = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (reserved, reserved_body) = dry_run(&app, &json!({"slug": "www", "provision": true})).await;
    let (foreign, foreign_body) = dry_run(&app, &json!({"slug": taken, "provision": true})).await;

    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["tenant"]["db_name"], ident.as_str());
    assert_eq!(plan["tenant"]["db_user"], ident.as_str());
    assert_eq!(plan["tenant"]["db_secret_ref"], format!("file:tenants/{s}"));
    assert_eq!(plan["server"], "default");
    assert_eq!(plan["portal_url"], format!("https://{s}.example.com"));
    assert_eq!(plan["steps"].as_array().unwrap().len(), 6, "{plan}");
    assert!(
        plan["steps"][4].as_str().unwrap().contains("version 1"),
        "{plan}"
    );
    assert!(plan["checks"].as_array().unwrap().len() >= 4, "{plan}");
    let out = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(out.contains("dry run") && out.contains(&ident), "{out}");
    assert_eq!(
        reserved,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{reserved_body}"
    );
    assert_eq!(reserved_body["error"]["code"], "slug_reserved");
    assert_eq!(foreign, StatusCode::CONFLICT, "{foreign_body}");
    assert_eq!(foreign_body["error"]["code"], "name_taken");
    assert_eq!(control_rows(&app).await, rows_before);
    assert_eq!(server_objects(&s.replace('-', "_")).await, objects_before);
    assert_eq!(objects_before, (0, 0));
    assert!(!std::path::Path::new(secrets.path())
        .join(format!("tenants/{s}"))
        .exists());
}

#[tokio::test]
async fn a_dry_run_without_provisioning_finds_a_taken_slug_and_writes_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        app.create_tenant(&tenant_body("acme")).await.status(),
        StatusCode::CREATED
    );
    let rows_before = control_rows(&app).await;

    let (taken, taken_body) = dry_run(&app, &tenant_body("acme")).await;
    let mut same_db = tenant_body("acme2");
    same_db["db_name"] = json!("t_acme");
    let (db_taken, db_body) = dry_run(&app, &same_db).await;
    let (ok, plan) = dry_run(&app, &tenant_body("beta")).await;

    assert_eq!(taken, StatusCode::CONFLICT, "{taken_body}");
    assert_eq!(taken_body["error"]["code"], "duplicate_slug");
    assert_eq!(db_taken, StatusCode::CONFLICT, "{db_body}");
    assert_eq!(db_body["error"]["code"], "duplicate_db_name");
    assert_eq!(ok, StatusCode::OK, "{plan}");
    assert_eq!(plan["tenant"]["slug"], "beta");
    assert!(plan["server"].is_null());
    assert_eq!(control_rows(&app).await, rows_before);
}
