//! The tenant lifecycle (README.md#provisioning) against two real PostgreSQL clusters: placement on
//! provisioning servers by labels and load, tenants from a slug alone, visible and retried
//! provisioning failures, e-mail lookup and limits.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use drover::devcluster::{Cluster, ClusterOptions};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// The second cluster of the placement tests (the harness' own is the first).
fn second() -> &'static Cluster {
    static SECOND: OnceLock<Cluster> = OnceLock::new();
    SECOND.get_or_init(|| {
        Cluster::start(ClusterOptions {
            stop_with_process: true,
            ..ClusterOptions::default()
        })
        .unwrap_or_else(|e| panic!("cannot start a second test PostgreSQL: {e}"))
    })
}

/// A non-superuser admin role (CREATEDB CREATEROLE) on the server of `superuser_url`, and
/// the group whose members log in with a password; returns the role's URL.
async fn admin_role(superuser_url: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "lc_admin_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let su = connect(superuser_url).await;
    su.batch_execute(&format!(
        "CREATE ROLE {name} LOGIN CREATEDB CREATEROLE PASSWORD 'adm-pw'; \
         DO $$ BEGIN CREATE ROLE drover_password_auth NOLOGIN; \
         EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    ))
    .await
    .unwrap();
    let cfg: tokio_postgres::Config = superuser_url.parse().unwrap();
    let port = cfg.get_ports()[0];
    format!("postgres://{name}:adm-pw@127.0.0.1:{port}/postgres")
}

/// A slug unique to this run.
fn slug(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn ident(slug: &str) -> String {
    format!("t_{}", slug.replace('-', "_"))
}

async fn json_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Makes the tenant's role log in with its password (the harness trusts other roles).
async fn require_password(superuser_url: &str, role: &str) {
    connect(superuser_url)
        .await
        .batch_execute(&format!("GRANT drover_password_auth TO {role}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_slug_alone_provisions_a_tenant_that_resolves_and_logs_in() {
    let secrets = SecretsDir::new();
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let app = TestApp::builder()
        .envs(&[
            (
                "DROVER_PROVISION_URL",
                &admin_role(&db_url("postgres")).await,
            ),
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
        ])
        .spawn()
        .await;
    let s = slug("only");

    let (status, t) = json_of(
        app.create_tenant_waiting(&json!({"slug": s, "provision": true}))
            .await,
    )
    .await;

    assert_eq!(status, StatusCode::CREATED, "{t}");
    let (host, port) = server_host_port();
    assert_eq!(t["status"], "active");
    assert_eq!(t["display_name"], s.as_str());
    assert_eq!(t["db_name"], ident(&s));
    assert_eq!(t["db_user"], ident(&s));
    assert_eq!(t["db_host"], host);
    assert_eq!(t["db_port"], port);
    assert_eq!(t["db_secret_ref"], format!("file:tenants/{s}"));
    assert_eq!(t["server"], "default");
    assert!(t["provisioned_at"].is_string(), "{t}");
    assert!(t["provisioning_error"].is_null(), "{t}");
    require_password(&db_url("postgres"), &ident(&s)).await;
    let resolved: Value = app.get_json(&format!("/v1/resolve/{s}")).await;
    let tenant = connect(resolved["dsn"].as_str().unwrap()).await;
    let rows: i64 = tenant
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_derived_name_past_63_bytes_is_refused_not_truncated() {
    let app = TestApp::builder()
        .env(
            "DROVER_PROVISION_URL",
            &admin_role(&db_url("postgres")).await,
        )
        .spawn()
        .await;
    let long = format!("a{}", "-b".repeat(31));

    let (status, body) = json_of(
        app.create_tenant(&json!({"slug": long, "provision": true}))
            .await,
    )
    .await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("db_name:") && message.contains("65 bytes"),
        "{message}"
    );
    assert_eq!(app.tenant_rows("true").await, 0);
}

#[tokio::test]
async fn tenants_land_by_label_and_by_load_and_a_full_server_refuses() {
    let secrets = SecretsDir::new();
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let eu = admin_role(&db_url("postgres")).await;
    let us = admin_role(&second().url("postgres")).await;
    let toml = format!(
        "[[provision_servers]]\nname = \"eu\"\nurl = \"{eu}\"\nlabels = {{ region = \"eu\" }}\nmax_tenants = 2\n\n\
         [[provision_servers]]\nname = \"us\"\nurl = \"{us}\"\nlabels = {{ region = \"us\" }}\n"
    );
    let app = TestApp::builder()
        .config_file(&toml)
        .envs(&[
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
        ])
        .spawn()
        .await;
    let create = |s: &str, labels: Value| json!({"slug": s, "provision": true, "labels": labels});
    let (us1, eu1, any1, any2, eu2) =
        (slug("us"), slug("eu"), slug("any"), slug("any"), slug("eu"));

    let (s_us1, t_us1) = json_of(
        app.create_tenant_waiting(&create(&us1, json!({"region": "us"})))
            .await,
    )
    .await;
    let (_, t_eu1) = json_of(
        app.create_tenant_waiting(&create(&eu1, json!({"region": "eu"})))
            .await,
    )
    .await;
    // Both servers hold one tenant: the first in the file wins; then eu is full.
    let (_, t_any1) = json_of(app.create_tenant(&create(&any1, json!({}))).await).await;
    let (_, t_any2) = json_of(app.create_tenant(&create(&any2, json!({}))).await).await;
    let (s_eu2, refused) = json_of(
        app.create_tenant(&create(&eu2, json!({"region": "eu"})))
            .await,
    )
    .await;
    let servers = app.servers().await;

    assert_eq!(s_us1, StatusCode::CREATED, "{t_us1}");
    assert_eq!(
        (t_us1["server"].as_str(), t_us1["status"].as_str()),
        (Some("us"), Some("active"))
    );
    assert_eq!(t_us1["db_port"], second().port());
    let on_second: i64 = connect(&second().url("postgres"))
        .await
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&ident(&us1)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        on_second, 1,
        "the us tenant's database is on the second cluster"
    );
    require_password(&second().url("postgres"), &ident(&us1)).await;
    let resolved: Value = app.get_json(&format!("/v1/resolve/{us1}")).await;
    connect(resolved["dsn"].as_str().unwrap()).await;
    assert_eq!(t_eu1["server"], "eu");
    assert_eq!(t_any1["server"], "eu");
    assert_eq!(t_any2["server"], "us");
    assert_eq!(s_eu2, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["code"], "no_provisioning_server");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("region=eu")
            && message.contains("eu [region=eu] 2/2")
            && message.contains("us [region=us]"),
        "{message}"
    );
    let summary: Vec<(String, i64, bool)> = servers
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["tenants"].as_i64().unwrap(),
                s["reachable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("eu".to_string(), 2, true), ("us".to_string(), 2, true)]
    );
    assert_eq!(servers[0]["max_tenants"], 2);
}

#[tokio::test]
async fn a_foreign_database_is_a_visible_error_never_adopted_and_a_retry_after_the_fix_succeeds() {
    let secrets = SecretsDir::new();
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let app = TestApp::builder()
        .envs(&[
            (
                "DROVER_PROVISION_URL",
                &admin_role(&db_url("postgres")).await,
            ),
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
        ])
        .spawn()
        .await;
    let s = slug("foreign");
    let su = connect(&db_url("postgres")).await;
    su.batch_execute(&format!("CREATE DATABASE {}", ident(&s)))
        .await
        .unwrap();

    let (status, _) = json_of(
        app.create_tenant_waiting(&json!({"slug": s, "provision": true}))
            .await,
    )
    .await;
    let failed: Value = app.get_json(&format!("/v1/tenants/{s}")).await;
    // The gauge is a snapshot refreshed in the background: wait for a refresh after the failure.
    wait_until(Duration::from_secs(15), || async {
        app.metric("drover_tenants_provisioning_failed").await == 1.0
    })
    .await;
    let failed_gauge = app.metric("drover_tenants_provisioning_failed").await;
    let listed = cli(&app, &["tenants", "list"]).await;
    let owner: String = su
        .query_one(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
            &[&ident(&s)],
        )
        .await
        .unwrap()
        .get(0);
    su.batch_execute(&format!("DROP DATABASE {}", ident(&s)))
        .await
        .unwrap();
    let (retry_status, retried) = json_of(app.provision_waiting(&s).await).await;
    let gauge_cleared = wait_until(Duration::from_secs(15), || async {
        app.metric("drover_tenants_provisioning_failed").await == 0.0
    })
    .await;

    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(failed_gauge, 1.0, "the failure shows in the gauge");
    assert!(gauge_cleared, "the gauge drops once the retry succeeds");
    assert_eq!(failed["status"], "provisioning");
    let error = &failed["provisioning_error"];
    assert_eq!(
        (error["step"].as_str(), error["retryable"].as_bool()),
        (Some("database"), Some(false))
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{error}"
    );
    assert!(error["at"].is_string());
    assert!(failed["provisioned_at"].is_null());
    let list = String::from_utf8_lossy(&listed.stdout);
    assert!(
        list.contains("PROVISIONING ERROR") && list.contains("database: database"),
        "{list}"
    );
    assert_eq!(owner, "postgres", "the foreign database was not taken over");
    assert_eq!(retry_status, StatusCode::OK, "{retried}");
    assert_eq!(retried["status"], "active");
    assert!(retried["provisioning_error"].is_null(), "{retried}");
    assert!(retried["provisioned_at"].is_string());
}

#[tokio::test]
async fn a_stopped_server_is_retried_automatically_and_the_tenant_finishes_once_it_is_back() {
    let mut own = Cluster::start(ClusterOptions::default()).unwrap();
    let url = admin_role(&own.url("postgres")).await;
    let secrets = SecretsDir::new();
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let toml = format!("[[provision_servers]]\nname = \"flaky\"\nurl = \"{url}\"\n");
    let app = TestApp::builder()
        .config_file(&toml)
        .envs(&[
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
            ("DROVER_PROVISION_RETRY_BACKOFF", "200ms"),
            ("DROVER_PROVISION_RETRIES", "30"),
        ])
        .spawn()
        .await;
    let s = slug("flaky");
    own.stop_server().unwrap();

    let (status, _) = json_of(
        app.create_tenant(&json!({"slug": s, "provision": true}))
            .await,
    )
    .await;
    let path = format!("/v1/tenants/{s}");
    let saw_retryable = wait_until(Duration::from_secs(30), || async {
        let t: Value = app.get_json(&path).await;
        t["provisioning_error"]["step"] == "connect" && t["provisioning_error"]["retryable"] == true
    })
    .await;
    let servers_down = app.servers().await;
    own.start_server().unwrap();
    let active = wait_until(Duration::from_secs(60), || async {
        let t: Value = app.get_json(&path).await;
        t["status"] == "active"
    })
    .await;
    let t: Value = app.get_json(&path).await;
    own.stop().unwrap();

    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(saw_retryable, "the connect failure shows on the tenant");
    assert_eq!(servers_down[0]["reachable"], false);
    assert!(servers_down[0]["error"].is_string());
    assert!(active, "{t}");
    assert!(t["provisioning_error"].is_null(), "{t}");
    assert_eq!(t["server"], "flaky");
}

#[tokio::test]
async fn search_matches_a_substring_of_the_slug_or_the_display_name_through_trigram_indexes() {
    let app = spawn_app().await;
    for (slug, name) in [
        ("north-wind", "Contoso Ltd"),
        ("fabrikam", "Northern Lights"),
        ("tailspin", "100% Toys"),
    ] {
        let mut t = tenant_body(slug);
        t["display_name"] = json!(name);
        app.create_tenant(&t).await;
    }
    let search = |q: &'static str| {
        let req = app
            .req(reqwest::Method::GET, "/v1/tenants")
            .query(&[("q", q)]);
        async move {
            let page: Value = req.send().await.unwrap().json().await.unwrap();
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["slug"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };

    let by_either = search("NORTH").await;
    let by_slug = search("wind").await;
    let by_name = search("contoso").await;
    let literal_percent = search("0%").await;
    let nothing = search("zzz").await;
    let indexes: Vec<String> = app
        .control_db()
        .await
        .query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'control_plane' \
             AND indexname LIKE 'tenants_%_trgm_idx' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("indexname"))
        .collect();

    assert_eq!(by_either, ["fabrikam", "north-wind"]);
    assert_eq!(by_slug, ["north-wind"]);
    assert_eq!(by_name, ["north-wind"]);
    assert_eq!(literal_percent, ["tailspin"]);
    assert!(nothing.is_empty());
    assert_eq!(
        indexes,
        ["tenants_display_name_trgm_idx", "tenants_slug_trgm_idx"],
        "pg_trgm is installed on the test cluster, so V14 indexes both columns"
    );
}

#[tokio::test]
async fn tenants_are_found_by_contact_email_case_insensitively_and_exactly() {
    let app = spawn_app().await;
    let mut a = tenant_body("mail-a");
    a["contact_email"] = json!("Ops@Acme.example");
    let mut b = tenant_body("mail-b");
    b["contact_email"] = json!("ops@acme.example.org");
    app.create_tenant(&a).await;
    app.create_tenant(&b).await;

    let found = app.slugs_by_email("ops@ACME.example").await;
    let none = app.slugs_by_email("ops@acme").await;

    assert_eq!(found, ["mail-a"]);
    assert!(none.is_empty());
}

#[tokio::test]
async fn limits_round_trip_through_put_get_yaml_export_and_apply() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("limited")).await;
    let limits =
        json!({"max_db_size_mb": 2048, "max_users": 50, "max_attachments_gb": 0, "notes": "pilot"});

    let (put_status, put) = json_of(app.put_limits("limited", &limits).await).await;
    let (_, got) = json_of(app.limits("limited").await).await;
    let (bad_status, bad) =
        json_of(app.put_limits("limited", &json!({"max_users": 0})).await).await;
    let (long_status, _) = json_of(
        app.put_limits("limited", &json!({"notes": "x".repeat(1025)}))
            .await,
    )
    .await;
    let dir = tempdir();
    let exported = cli(&app, &["export", "-o", &dir]).await;
    let file = std::path::Path::new(&dir).join("limited.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap_or_default();
    std::fs::write(&file, yaml.replace("maxUsers: 50", "maxUsers: 75")).unwrap();
    let applied = cli(&app, &["apply", "-f", &dir]).await;
    let (_, after_apply) = json_of(app.limits("limited").await).await;
    let kinds = app.event_types("limited").await;

    assert_eq!(put_status, StatusCode::OK, "{put}");
    assert_eq!(got["max_db_size_mb"], 2048);
    assert_eq!(got["max_users"], 50);
    assert_eq!(got["max_attachments_gb"], 0);
    assert_eq!(got["notes"], "pilot");
    assert_eq!(bad_status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["error"]["field"], "max_users");
    assert_eq!(long_status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    assert!(
        yaml.contains("limits:") && yaml.contains("maxUsers: 50"),
        "{yaml}"
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert_eq!(after_apply["max_users"], 75);
    assert_eq!(after_apply["notes"], "pilot");
    assert_eq!(
        kinds.iter().filter(|k| *k == "limits_updated").count(),
        2,
        "{kinds:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the CLI against the app (off the runtime's thread, which serves the app).
async fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    let server = app.base();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
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

/// A fresh empty directory.
fn tempdir() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "drover-lc-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().into_owned()
}
