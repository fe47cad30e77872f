//! Provisioning and deprovisioning tenant databases against the real test server, through
//! a non-superuser admin role (CREATEDB + CREATEROLE), as in production.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// An admin role for `DROVER_PROVISION_URL` with the given attributes; returns its URL.
async fn provisioner_role(attrs: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "prov_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let admin = connect(&db_url("postgres")).await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {name} LOGIN {attrs} PASSWORD 'prov-pw'"
        ))
        .await
        .unwrap();
    let (host, port) = server_host_port();
    format!("postgres://{name}:prov-pw@{host}:{port}/postgres")
}

/// Names unique to one test: (slug, database and role name).
fn names(prefix: &str) -> (String, String) {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let slug = format!("{prefix}-{}-{n}", std::process::id());
    (slug.clone(), format!("pt_{}", slug.replace('-', "_")))
}

fn provision_body(slug: &str, db: &str) -> Value {
    let (host, port) = server_host_port();
    json!({
        "slug": slug, "display_name": format!("{slug} Ltd"),
        "db_name": db, "db_host": host, "db_port": port, "db_user": db,
        "db_secret_ref": format!("file:tenants/{slug}"),
        "provision": true,
    })
}

struct Setup {
    app: TestApp,
    secrets: SecretsDir,
    migrations: MigrationsDir,
}

async fn setup(provision_url: &str, files: &[(&str, &str)]) -> Setup {
    let secrets = SecretsDir::new();
    let migrations = MigrationsDir::new(files);
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_PROVISION_URL", provision_url),
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
        ])
        .spawn()
        .await;
    Setup {
        app,
        secrets,
        migrations,
    }
}

const V1: (&str, &str) = (
    "V1__widgets.sql",
    "CREATE TABLE widgets (id bigint PRIMARY KEY);",
);
const V2: (&str, &str) = ("V2__names.sql", "ALTER TABLE widgets ADD COLUMN name text;");

async fn status_of(app: &TestApp, slug: &str) -> String {
    let t: Value = app.get_json(&format!("/v1/tenants/{slug}")).await;
    t["status"].as_str().unwrap_or_default().to_string()
}

async fn events(app: &TestApp, slug: &str) -> Vec<Value> {
    let page: Value = app
        .get_json(&format!("/v1/tenants/{slug}/events?limit=100"))
        .await;
    page["items"].as_array().cloned().unwrap_or_default()
}

async fn one_value(sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> i64 {
    let admin = connect(&db_url("postgres")).await;
    admin.query_one(sql, params).await.unwrap().get(0)
}

#[tokio::test]
async fn provisioned_tenant_has_its_role_database_private_secret_and_latest_schema() {
    let s = setup(&provisioner_role("CREATEDB CREATEROLE").await, &[V1, V2]).await;
    let (slug, db) = names("prov");

    let created = s.app.create_tenant(&provision_body(&slug, &db)).await;
    let status = created.status();
    let body: Value = created.json().await.unwrap();
    let app = &s.app;
    let active = wait_until(Duration::from_secs(30), || async {
        status_of(app, &slug).await == "active"
    })
    .await;

    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "provisioning");
    assert!(active, "events: {:?}", events(app, &slug).await);
    let owner = one_value(
        "SELECT count(*) FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba \
         WHERE d.datname = $1 AND r.rolname = $1",
        &[&db],
    )
    .await;
    assert_eq!(owner, 1, "database owned by the tenant role");
    let public_connect = one_value(
        "SELECT count(*) FROM pg_database WHERE datname = $1 AND has_database_privilege('public', oid, 'CONNECT')",
        &[&db],
    )
    .await;
    assert_eq!(
        public_connect, 0,
        "PUBLIC may not connect to a tenant database"
    );
    let secret = s.secrets.0.join(format!("tenants/{slug}"));
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let t: Value = app.get_json(&format!("/v1/tenants/{slug}")).await;
    assert_eq!(t["schema_version"], 2);
    assert_eq!(t["db_secret_ref"], format!("file:tenants/{slug}"));
    let kinds: Vec<String> = events(app, &slug)
        .await
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["provisioned", "migrated", "created"]);
    let provisioned = &events(app, &slug).await[0];
    assert_eq!(provisioned["payload"]["version"], 2);
    // The password must really be the one behind the ref: make the role use SCRAM (the
    // harness trusts other roles) and log in with the DSN resolution hands out.
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE drover_password_auth NOLOGIN; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             GRANT drover_password_auth TO {db}"
        ))
        .await
        .unwrap();
    let resolved: Value = app.get_json(&format!("/v1/resolve/{slug}")).await;
    let tenant_client = connect(resolved["dsn"].as_str().unwrap()).await;
    let history: i64 = tenant_client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(history, 2);
}

#[tokio::test]
async fn failed_migration_leaves_tenant_provisioning_and_retry_finishes_without_duplicates() {
    let broken = (
        "V2__names.sql",
        "ALTER TABLE no_such_table ADD COLUMN name text;",
    );
    let s = setup(
        &provisioner_role("CREATEDB CREATEROLE").await,
        &[V1, broken],
    )
    .await;
    let (slug, db) = names("retry");

    let first = s
        .app
        .create_tenant_waiting(&provision_body(&slug, &db))
        .await;
    let first_status = first.status();
    let first_body: Value = first.json().await.unwrap();
    let status_after_failure = status_of(&s.app, &slug).await;
    let error_event = events(&s.app, &slug).await[0].clone();
    s.migrations.put(V2.0, V2.1);
    let retry = s.app.provision_waiting(&slug).await;
    let retry_status = retry.status();
    let retried: Value = retry.json().await.unwrap();

    assert_eq!(first_status, StatusCode::BAD_GATEWAY, "{first_body}");
    assert_eq!(first_body["error"]["step"], "migrate");
    assert!(
        first_body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_table"),
        "{first_body}"
    );
    assert_eq!(status_after_failure, "provisioning");
    assert_eq!(error_event["event_type"], "provisioning_failed");
    assert_eq!(error_event["payload"]["step"], "migrate");
    assert_eq!(retry_status, StatusCode::OK, "{retried}");
    assert_eq!(retried["status"], "active");
    assert_eq!(retried["schema_version"], 2);
    let roles = one_value("SELECT count(*) FROM pg_roles WHERE rolname = $1", &[&db]).await;
    let dbs = one_value(
        "SELECT count(*) FROM pg_database WHERE datname = $1",
        &[&db],
    )
    .await;
    assert_eq!((roles, dbs), (1, 1));
    let provisioned: Vec<Value> = events(&s.app, &slug)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "provisioned")
        .collect();
    assert_eq!(provisioned.len(), 1);
    assert_eq!(provisioned[0]["payload"]["role_created"], false);
    assert_eq!(provisioned[0]["payload"]["database_created"], false);
}

#[tokio::test]
async fn admin_role_without_createrole_fails_at_the_role_step_until_it_is_granted() {
    let url = provisioner_role("CREATEDB").await;
    let s = setup(&url, &[V1]).await;
    let (slug, db) = names("norole");
    let admin_role = url
        .trim_start_matches("postgres://")
        .split(':')
        .next()
        .unwrap()
        .to_string();

    let first = s
        .app
        .create_tenant_waiting(&provision_body(&slug, &db))
        .await;
    let first_status = first.status();
    let first_body: Value = first.json().await.unwrap();
    let status_after_failure = status_of(&s.app, &slug).await;
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!("ALTER ROLE {admin_role} CREATEROLE"))
        .await
        .unwrap();
    let retry = s.app.provision_waiting(&slug).await;

    assert_eq!(first_status, StatusCode::BAD_GATEWAY, "{first_body}");
    assert_eq!(first_body["error"]["step"], "role");
    assert!(
        first_body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("42501"),
        "the SQLSTATE is shown, not just 'db error': {first_body}"
    );
    assert_eq!(status_after_failure, "provisioning");
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(status_of(&s.app, &slug).await, "active");
}

#[tokio::test]
async fn hostile_names_are_refused_or_quoted_never_spliced_into_sql() {
    let s = setup(&provisioner_role("CREATEDB CREATEROLE").await, &[V1]).await;
    let (slug, _) = names("hostile");
    let long = "t".repeat(64);
    let refused = [
        ("db_name", json!("t\"; DROP DATABASE postgres; --")),
        ("db_name", json!("t'; SELECT 1; --")),
        ("db_name", json!(long)),
        ("db_user", json!("tënant")),
        ("slug", json!("acme'; --")),
    ];

    let mut answers = Vec::new();
    for (field, value) in &refused {
        let mut body = provision_body(&slug, "pt_ok");
        body[*field] = value.clone();
        let r = s.app.create_tenant(&body).await;
        answers.push((field, r.status(), r.json::<Value>().await.unwrap()));
    }
    // Upper case and '-' are legal but only survive PostgreSQL when quoted.
    let tricky = format!("PT-Mixed_{}", std::process::id());
    let ok = s
        .app
        .create_tenant_waiting(&provision_body(&slug, &tricky))
        .await;

    for (field, status, body) in answers {
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        assert_eq!(body["error"]["field"], *field, "{body}");
    }
    assert_eq!(s.app.tenant_rows("slug LIKE 'hostile%'").await, 1);
    assert_eq!(ok.status(), StatusCode::CREATED);
    let exact = one_value(
        "SELECT count(*) FROM pg_database WHERE datname = $1",
        &[&tricky],
    )
    .await;
    assert_eq!(exact, 1, "the database has exactly the requested name");
}

#[tokio::test]
async fn deprovision_drops_database_role_and_secret_even_with_open_sessions() {
    let s = setup(&provisioner_role("CREATEDB CREATEROLE").await, &[V1]).await;
    let (slug, db) = names("drop");
    let created = s
        .app
        .create_tenant_waiting(&provision_body(&slug, &db))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let (host, port) = server_host_port();
    let idle_session = connect(&format!("postgres://{db}@{host}:{port}/{db}")).await;

    let deleted = s.app.delete_tenant_and_database(&slug).await;
    let deleted_status = deleted.status();
    let body: Value = deleted.json().await.unwrap();

    assert_eq!(deleted_status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "deleted");
    assert_eq!(
        one_value(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&db]
        )
        .await,
        0
    );
    assert_eq!(
        one_value("SELECT count(*) FROM pg_roles WHERE rolname = $1", &[&db]).await,
        0
    );
    assert!(!s.secrets.0.join(format!("tenants/{slug}")).exists());
    assert!(idle_session.simple_query("SELECT 1").await.is_err());
    let control = s.app.control_db().await;
    let payload: Value = control
        .query_one(
            "SELECT e.payload FROM control_plane.tenant_events e JOIN control_plane.tenants t \
             ON t.id = e.tenant_id WHERE t.slug = $1 AND e.event_type = 'deleted'",
            &[&slug],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        payload,
        json!({"from": "deleting", "to": "deleted", "database_dropped": true,
               "role_dropped": true, "secret_removed": true})
    );
}

#[tokio::test]
async fn delete_without_drop_database_keeps_database_role_and_secret() {
    let s = setup(&provisioner_role("CREATEDB CREATEROLE").await, &[V1]).await;
    let (slug, db) = names("keep");
    s.app
        .create_tenant_waiting(&provision_body(&slug, &db))
        .await;

    let deleted = s.app.delete_tenant(&slug).await;

    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(
        one_value(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&db]
        )
        .await,
        1
    );
    assert_eq!(
        one_value("SELECT count(*) FROM pg_roles WHERE rolname = $1", &[&db]).await,
        1
    );
    assert!(s.secrets.0.join(format!("tenants/{slug}")).exists());
}

#[tokio::test]
async fn a_database_drover_did_not_create_is_never_adopted_or_dropped() {
    let s = setup(&provisioner_role("CREATEDB CREATEROLE").await, &[V1]).await;
    let (slug, db) = names("foreign");
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let (registered, registered_db) = names("plain");
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!("CREATE DATABASE {registered_db}"))
        .await
        .unwrap();
    let mut plain = provision_body(&registered, &registered_db);
    plain["provision"] = json!(false);
    plain["status"] = json!("active");
    s.app.create_tenant(&plain).await;

    let adopt = s
        .app
        .create_tenant_waiting(&provision_body(&slug, &db))
        .await;
    let adopt_status = adopt.status();
    let adopt_body: Value = adopt.json().await.unwrap();
    let drop = s.app.delete_tenant_and_database(&registered).await;
    let drop_status = drop.status();

    assert_eq!(adopt_status, StatusCode::CONFLICT, "{adopt_body}");
    assert_eq!(adopt_body["error"]["code"], "name_taken");
    assert_eq!(status_of(&s.app, &slug).await, "provisioning");
    assert!(
        !s.secrets.0.join(format!("tenants/{slug}")).exists(),
        "no password is written for a refused name"
    );
    assert_eq!(drop_status, StatusCode::CONFLICT);
    assert_eq!(status_of(&s.app, &registered).await, "active");
    assert_eq!(
        one_value(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&registered_db]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn provisioning_without_an_admin_connection_is_refused_before_anything_is_written() {
    let app = spawn_app().await;
    let (slug, db) = names("nourl");

    let r = app.create_tenant(&provision_body(&slug, &db)).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();

    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("DROVER_PROVISION_URL"));
    assert_eq!(app.tenant_rows("true").await, 0);
}

#[tokio::test]
async fn provisioning_with_an_env_reference_is_refused_naming_the_field() {
    let s = setup(&provisioner_role("CREATEDB CREATEROLE").await, &[V1]).await;
    let (slug, db) = names("envref");
    let mut body = provision_body(&slug, &db);
    body["db_secret_ref"] = json!("env:TENANT_PASSWORD");

    let r = s.app.create_tenant(&body).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "db_secret_ref");
    assert_eq!(s.app.tenant_rows("true").await, 0);
}

#[tokio::test]
async fn cli_provisions_with_wait_and_deprovisions_with_drop_database() {
    let s = setup(&provisioner_role("CREATEDB CREATEROLE").await, &[V1, V2]).await;
    let (slug, db) = names("cli");
    let (host, port) = server_host_port();
    let run = |args: Vec<String>| {
        let server = s.app.base();
        async move {
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
    };
    let create: Vec<String> = [
        "tenants",
        "create",
        &slug,
        "--display-name",
        "CLI Ltd",
        "--db-host",
        &host,
        "--db-port",
        &port.to_string(),
        "--db-name",
        &db,
        "--db-user",
        &db,
        "--secret-ref",
        &format!("file:tenants/{slug}"),
        "--provision",
        "--wait",
        "--output",
        "json",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();

    let created = run(create).await;
    let deleted = run(vec![
        "tenants".into(),
        "delete".into(),
        slug.clone(),
        "--drop-database".into(),
    ])
    .await;

    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let t: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(
        (t["status"].as_str(), t["schema_version"].as_i64()),
        (Some("active"), Some(2))
    );
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert_eq!(
        one_value(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&db]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn provisioning_with_a_vault_reference_stores_the_password_in_kv2_and_deprovision_removes_it()
{
    let Some(bao) = crate::helpers::OpenBao::start().await else {
        return;
    };
    bao.put("tenants/other", json!({"keep": "me"})).await;
    let migrations = MigrationsDir::new(&[V1]);
    let app = TestApp::builder()
        .envs(&[
            (
                "DROVER_PROVISION_URL",
                &provisioner_role("CREATEDB CREATEROLE").await,
            ),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
            ("DROVER_VAULT_ADDR", &bao.addr),
            ("DROVER_VAULT_TOKEN", &bao.root_token),
        ])
        .spawn()
        .await;
    let (slug, db) = names("vault");
    let mut body = provision_body(&slug, &db);
    body["db_secret_ref"] = json!(format!("vault:secret/tenants/{slug}#password"));
    let read = |path: String| {
        let (addr, token) = (bao.addr.clone(), bao.root_token.clone());
        async move {
            let r = reqwest::Client::new()
                .get(format!("{addr}/v1/secret/data/{path}"))
                .header("X-Vault-Token", token)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let created = app.create_tenant_waiting(&body).await;
    let created_status = created.status();
    let (status, stored) = read(format!("tenants/{slug}")).await;
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE drover_password_auth NOLOGIN; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             GRANT drover_password_auth TO {db}"
        ))
        .await
        .unwrap();
    let resolved: Value = app.get_json(&format!("/v1/resolve/{slug}")).await;
    let login = connect(resolved["dsn"].as_str().unwrap()).await;
    let logged_in = login.simple_query("SELECT 1").await.is_ok();
    drop(login);
    let deleted = app.delete_tenant_and_database(&slug).await;
    let deleted_status = deleted.status();
    let deleted_body = deleted.text().await.unwrap_or_default();
    let (gone, _) = read(format!("tenants/{slug}")).await;
    let (kept, other) = read("tenants/other".into()).await;

    assert_eq!(created_status, StatusCode::CREATED);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stored["data"]["data"]["password"].as_str().map(str::len),
        Some(43)
    );
    assert!(logged_in, "the password in Vault is the role's");
    assert_eq!(deleted_status, StatusCode::OK, "{deleted_body}");
    assert_eq!(gone, StatusCode::NOT_FOUND);
    assert_eq!(
        (kept, &other["data"]["data"]),
        (StatusCode::OK, &json!({"keep": "me"}))
    );
}

/// What a real `drover serve` process needs to provision: its own control database,
/// secrets and migrations directories and a provisioner role.
struct Fleet {
    control: String,
    secrets: SecretsDir,
    migrations: MigrationsDir,
    provision_url: String,
}

impl Fleet {
    async fn new(files: &[(&str, &str)]) -> Fleet {
        Fleet {
            control: fresh_control_database().await,
            secrets: SecretsDir::new(),
            migrations: MigrationsDir::new(files),
            provision_url: provisioner_role("CREATEDB CREATEROLE").await,
        }
    }

    /// Starts a daemon on this fleet; `extra` adds DROVER_* settings.
    async fn daemon(&self, instance: &str, extra: &[(&str, &str)]) -> Daemon {
        let mut env = vec![
            ("DROVER_PROVISION_URL", self.provision_url.as_str()),
            ("DROVER_SECRETS_DIR", self.secrets.path()),
            ("DROVER_MIGRATIONS_DIR", self.migrations.path()),
        ];
        env.extend_from_slice(extra);
        Daemon::start(&self.control, instance, &env).await
    }
}

/// A migration slow enough to kill or stop a daemon in the middle of it.
const SLOW: (&str, &str) = (
    "V1__slow.sql",
    "SELECT pg_sleep(2); CREATE TABLE widgets (id bigint);",
);

/// Waits until the `pg_sleep` of a slow migration runs in database `db`.
async fn wait_for_slow_migration(db: &str) {
    let migrating = wait_until(Duration::from_secs(20), || async {
        let admin = connect(&db_url("postgres")).await;
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%pg_sleep%'",
                &[&db],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    })
    .await;
    assert!(migrating, "the job never reached the migration");
}

#[tokio::test]
async fn daemon_killed_mid_provisioning_leaves_the_tenant_provisioning_and_a_retry_finishes_it() {
    let fleet = Fleet::new(&[SLOW]).await;
    let mut first = fleet.daemon("first", &[]).await;
    let (slug, db) = names("crash");
    let accepted = first.create_tenant(&provision_body(&slug, &db)).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    wait_for_slow_migration(&db).await;

    first.kill9();
    let second = fleet.daemon("second", &[]).await;
    let stuck: Value = second.get_tenant(&slug).await.json().await.unwrap();
    let retried = second.provision_waiting(&slug).await;
    let retried_status = retried.status();
    let body: Value = retried.json().await.unwrap();

    assert_eq!(stuck["status"], "provisioning");
    assert_eq!(retried_status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "active");
    assert_eq!(body["schema_version"], 1);
    assert_eq!(
        history(&format!(
            "postgres://{db}@{}:{}/{db}",
            server_host_port().0,
            server_host_port().1
        ))
        .await,
        [1]
    );
}

/// Forwards every connection to `port` on loopback to the test server: a provisioning
/// server whose port was closed and is open again.
async fn open_port_to_the_server(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (host, server_port) = server_host_port();
    let target = format!("{host}:{server_port}");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

#[tokio::test]
async fn a_failed_provisionings_retries_resume_after_its_daemon_is_killed_and_the_server_is_back() {
    let fleet = Fleet::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]).await;
    // The provisioner role, reached through a port nothing listens on yet.
    let closed = free_port();
    let mut url: url::Url = fleet.provision_url.parse().unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(closed)).unwrap();
    let retries = [
        ("DROVER_PROVISION_URL", url.as_str()),
        ("DROVER_PROVISION_RETRIES", "30"),
        ("DROVER_PROVISION_RETRY_BACKOFF", "200ms"),
    ];
    let mut first = fleet.daemon("first", &retries).await;
    let (slug, db) = names("resume");
    let accepted = first.create_tenant(&provision_body(&slug, &db)).await;
    let control = connect(&fleet.control).await;
    let failed_twice = wait_until(Duration::from_secs(20), || async {
        let t: Value = first.get_tenant(&slug).await.json().await.unwrap();
        let attempts: i32 = control
            .query_one(
                "SELECT provision_attempts FROM control_plane.tenants WHERE slug = $1",
                &[&slug],
            )
            .await
            .unwrap()
            .get(0);
        attempts >= 2 && t["provisioning_error"]["step"] == "connect"
    })
    .await;

    first.kill9();
    open_port_to_the_server(closed).await;
    let second = fleet.daemon("second", &retries).await;
    // No call but reads: the retry schedule on the tenant row is all the second has.
    let active = wait_until(Duration::from_secs(60), || async {
        let t: Value = second.get_tenant(&slug).await.json().await.unwrap();
        t["status"] == "active"
    })
    .await;
    let t: Value = second.get_tenant(&slug).await.json().await.unwrap();
    let schedule = control
        .query_one(
            "SELECT provision_attempts, provision_retry_at IS NULL AS cleared \
             FROM control_plane.tenants WHERE slug = $1",
            &[&slug],
        )
        .await
        .unwrap();

    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    assert!(failed_twice, "the closed port never failed the job twice");
    assert!(active, "the second daemon never resumed the retries: {t}");
    assert!(t["provisioning_error"].is_null(), "{t}");
    assert_eq!(t["schema_version"], 1, "{t}");
    assert_eq!(schedule.get::<_, i32>("provision_attempts"), 0);
    assert!(schedule.get::<_, bool>("cleared"));
}

#[tokio::test]
async fn sigterm_mid_provisioning_lets_the_job_finish_within_the_grace_period() {
    let fleet = Fleet::new(&[SLOW]).await;
    let daemon = fleet
        .daemon("graceful", &[("DROVER_SHUTDOWN_GRACE", "30s")])
        .await;
    let (slug, db) = names("graceful");
    let accepted = daemon.create_tenant(&provision_body(&slug, &db)).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    wait_for_slow_migration(&db).await;

    let (exited_cleanly, logs) = daemon.terminate().await;

    assert!(exited_cleanly, "{logs}");
    let status: String = connect(&fleet.control)
        .await
        .query_one(
            "SELECT status FROM control_plane.tenants WHERE slug = $1",
            &[&slug],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "active", "{logs}");
}

#[tokio::test]
async fn a_tenant_being_provisioned_cannot_be_activated_by_hand_or_share_a_secret_reference() {
    let broken = (
        "V1__broken.sql",
        "ALTER TABLE no_such_table ADD COLUMN x int;",
    );
    let s = setup(&provisioner_role("CREATEDB CREATEROLE").await, &[broken]).await;
    let (slug, db) = names("early");
    let failed = s
        .app
        .create_tenant_waiting(&provision_body(&slug, &db))
        .await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    let (other, other_db) = names("sharer");
    let mut sharing = provision_body(&other, &other_db);
    sharing["db_secret_ref"] = json!(format!("file:tenants/{slug}"));

    let patched = s
        .app
        .patch_tenant(&slug, &json!({"status": "active"}))
        .await;
    let patched_status = patched.status();
    let patched_body: Value = patched.json().await.unwrap();
    let shared = s.app.create_tenant(&sharing).await;
    let shared_status = shared.status();
    let shared_body: Value = shared.json().await.unwrap();

    assert_eq!(patched_status, StatusCode::CONFLICT, "{patched_body}");
    assert_eq!(status_of(&s.app, &slug).await, "provisioning");
    assert_eq!(
        shared_status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{shared_body}"
    );
    assert_eq!(shared_body["error"]["field"], "db_secret_ref");
}

#[tokio::test]
async fn drop_database_for_a_tenant_whose_database_is_not_on_the_admin_server_is_refused() {
    let s = setup(&provisioner_role("CREATEDB CREATEROLE").await, &[V1]).await;
    let (slug, db) = names("elsewhere");
    let mut registered = provision_body(&slug, &db);
    registered["provision"] = json!(false);
    registered["status"] = json!("active");
    assert_eq!(
        s.app.create_tenant(&registered).await.status(),
        StatusCode::CREATED
    );

    let r = s.app.delete_tenant_and_database(&slug).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "nothing_to_drop");
    assert_eq!(status_of(&s.app, &slug).await, "active");
}

#[tokio::test]
async fn trace_logs_of_provisioning_hold_neither_the_password_nor_its_verifier() {
    let fleet = Fleet::new(&[V1]).await;
    let daemon = fleet
        .daemon("traced", &[("DROVER_LOG", "trace,tokio_postgres=trace")])
        .await;
    let (slug, db) = names("traced");

    let created = daemon
        .create_tenant_waiting(&provision_body(&slug, &db))
        .await;
    let status = created.status();
    let (_, logs) = daemon.terminate().await;

    assert_eq!(status, StatusCode::CREATED);
    let password =
        std::fs::read_to_string(fleet.secrets.0.join(format!("tenants/{slug}"))).unwrap();
    assert!(password.len() >= 43);
    assert!(
        !logs.contains(password.trim()),
        "the password is in the log"
    );
    assert!(
        !logs.contains("SCRAM-SHA-256$"),
        "the role's verifier is in the log"
    );
    assert!(
        !logs.contains("prov-pw"),
        "the admin URL's password is in the log"
    );
}
