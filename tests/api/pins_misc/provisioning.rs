//! Provisioning retries end to end: the tenant role logs in with a password (the test
//! server trusts roles outside `drover_password_auth`, so the role is put in it), and the
//! automatic retries stop at `provision_retries`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    connect, db_url, free_port, server_host_port, wait_until, MigrationsDir, SecretsDir, TestApp,
};

/// A name unique to this process: `{prefix}_{pid}_{n}`.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A non-superuser admin role that may create roles and databases; its URL.
async fn provisioner() -> String {
    let name = unique("pinprov");
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!(
            "CREATE ROLE {name} LOGIN CREATEDB CREATEROLE PASSWORD 'prov-pw'"
        ))
        .await
        .unwrap();
    let (host, port) = server_host_port();
    format!("postgres://{name}:prov-pw@{host}:{port}/postgres")
}

/// A body provisioning `slug` into a database and role both called `db`.
fn body(slug: &str, db: &str) -> Value {
    let (host, port) = server_host_port();
    json!({
        "slug": slug, "display_name": slug, "db_name": db, "db_host": host, "db_port": port,
        "db_user": db, "db_secret_ref": format!("file:tenants/{slug}"), "provision": true,
    })
}

/// From now on `role` must log in with its password (SCRAM) like a production role.
async fn require_password(role: &str) {
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE drover_password_auth NOLOGIN; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             GRANT drover_password_auth TO \"{role}\""
        ))
        .await
        .unwrap();
}

/// The tenant's `provisioning_failed` events, oldest first.
async fn failures(app: &TestApp, slug: &str) -> Vec<Value> {
    let page: Value = app
        .get_json(&format!("/v1/tenants/{slug}/events?limit=100"))
        .await;
    let mut out: Vec<Value> = page["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["event_type"] == "provisioning_failed")
        .collect();
    out.reverse();
    out
}

// Pins: a retry that writes a new password behind the reference without `ALTER ROLE …
// PASSWORD` (the role keeps the old one), and a retry that replaces a password that is
// still there. The tenant role is put in the password group after the first attempt, so
// every later login (the retry's migrations, the resolved DSN) needs the right password.
#[tokio::test]
async fn retries_log_in_with_the_password_behind_the_reference_kept_or_written_anew() {
    let secrets = SecretsDir::new();
    let v1 = (
        "V1__widgets.sql",
        "CREATE TABLE widgets (id bigint PRIMARY KEY);",
    );
    let broken = (
        "V2__names.sql",
        "ALTER TABLE no_such_table ADD COLUMN name text;",
    );
    let migrations = MigrationsDir::new(&[v1, broken]);
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_PROVISION_URL", &provisioner().await),
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
        ])
        .spawn()
        .await;
    let db = unique("pinpw");
    let slug = db.replace('_', "-");
    let secret = secrets.0.join(format!("tenants/{slug}"));

    let first = app.create_tenant_waiting(&body(&slug, &db)).await;
    assert_eq!(first.status(), StatusCode::BAD_GATEWAY, "V2 is broken");
    let first_password = std::fs::read_to_string(&secret).unwrap();
    require_password(&db).await;
    // Retry 1, the password still stored: it must be reused (the role has it), so the
    // retry logs in and fails on V2 again, not on authentication.
    let kept = app.provision_waiting(&slug).await;
    let kept_status = kept.status();
    let kept_body: Value = kept.json().await.unwrap();
    let password_after_kept = std::fs::read_to_string(&secret).unwrap();
    // Retry 2, the password lost (an operator removed it) and V2 fixed: a new password is
    // written, and the role must be given it.
    std::fs::remove_file(&secret).unwrap();
    migrations.put("V2__names.sql", "ALTER TABLE widgets ADD COLUMN name text;");
    let anew = app.provision_waiting(&slug).await;
    let anew_status = anew.status();
    let anew_body: Value = anew.json().await.unwrap();

    assert_eq!(kept_status, StatusCode::BAD_GATEWAY, "{kept_body}");
    let message = kept_body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no_such_table"),
        "the kept password logged in and V2 failed again: {kept_body}"
    );
    assert_eq!(
        password_after_kept, first_password,
        "a stored password is reused"
    );
    assert_eq!(anew_status, StatusCode::OK, "{anew_body}");
    assert_eq!(anew_body["status"], "active");
    assert_eq!(anew_body["schema_version"], 2);
    let new_password = std::fs::read_to_string(&secret).unwrap();
    assert_ne!(new_password, first_password, "a new password was written");
    let resolved: Value = app.get_json(&format!("/v1/resolve/{slug}")).await;
    let dsn = resolved["dsn"].as_str().unwrap();
    let (tenant, conn) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .expect("the resolved DSN logs in with the new password");
    tokio::spawn(conn);
    let in_group: bool = tenant
        .query_one(
            "SELECT pg_has_role(current_user, 'drover_password_auth', 'MEMBER') AS member",
            &[],
        )
        .await
        .unwrap()
        .get("member");
    assert!(
        in_group,
        "the login really went through password authentication"
    );
}

// Pins: automatic retries that never stop (or stop early) on a retryable failure. The
// admin server refuses connections, so every attempt fails at `connect`, retryably; with
// `provision_retries` 2 the job makes exactly three attempts, then leaves the tenant
// `provisioning` with the error for a person to look at, and nothing tries again.
#[tokio::test]
async fn a_retryable_failure_is_retried_provision_retries_times_then_left_provisioning_with_the_error(
) {
    let secrets = SecretsDir::new();
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let (host, _) = server_host_port();
    let nowhere = format!("postgres://nobody:pw@{host}:{}/postgres", free_port());
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_PROVISION_URL", &nowhere),
            ("DROVER_PROVISION_RETRIES", "2"),
            ("DROVER_PROVISION_RETRY_BACKOFF", "100ms"),
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
        ])
        .spawn()
        .await;
    let db = unique("pincap");
    let slug = db.replace('_', "-");

    // Waiting returns when the job has ended; a job that retries forever never does.
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        app.create_tenant_waiting(&body(&slug, &db)),
    )
    .await
    .expect("the job ended after its retries");
    let status = answer.status();
    let error: Value = answer.json().await.unwrap();
    let events = failures(&app, &slug).await;
    // Longer than the next retry would have waited (100 ms doubled three times: 800 ms).
    let quiet = !wait_until(Duration::from_secs(2), || async {
        failures(&app, &slug).await.len() > 3
    })
    .await;

    assert!(status.is_server_error(), "{status} {error}");
    assert_eq!(error["error"]["step"], "connect", "{error}");
    let attempts: Vec<i64> = events
        .iter()
        .map(|e| e["payload"]["attempt"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(attempts, [1, 2, 3], "{events:#?}");
    assert!(events.iter().all(|e| e["payload"]["retryable"] == true));
    assert!(quiet, "attempted again after the retries ran out");
    let tenant: Value = app.get_json(&format!("/v1/tenants/{slug}")).await;
    assert_eq!(tenant["status"], "provisioning", "{tenant}");
    assert_eq!(tenant["provisioning_error"]["step"], "connect", "{tenant}");
    assert_eq!(tenant["provisioning_error"]["retryable"], true, "{tenant}");
}
