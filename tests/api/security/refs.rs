//! Secret references scoped by purpose: with the secrets directory laid out as the
//! deployment examples lay it out (drover's token files, the control-DB URL, the Vault token
//! and webhook keys next to tenant secrets), a tenant's reference reaches only `tenants/`, a
//! webhook key's only `webhooks/`, drover refuses to start with one of its own files inside
//! either, and deprovisioning removes only the secret it wrote itself.

use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const DB_URL_FILE: &str = "postgres://drover:control-db-password@db.internal/drover";
const VAULT_TOKEN: &str = "hvs.the-daemons-own-vault-token";

/// The secrets directory of `deploy/kubernetes` and `deploy/drover.toml`: drover's own
/// files at the top, webhook keys and tenant secrets below.
fn deployed_secrets() -> SecretsDir {
    let s = SecretsDir::new();
    s.put("admin-token", ADMIN_TOKEN);
    s.put("database-url", DB_URL_FILE);
    s.put("vault-token", VAULT_TOKEN);
    s.put("webhooks/ops", "webhook-hmac-key");
    s.put("tenants/acme", "tenant-password");
    s
}

async fn app_on(secrets: &SecretsDir) -> TestApp {
    TestApp::builder()
        .envs(&[
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_ADMIN_TOKEN_REF", "file:admin-token"),
        ])
        .spawn()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_ref_cannot_read_the_control_db_url_or_the_vault_token() {
    let secrets = deployed_secrets();
    let app = app_on(&secrets).await;

    for (slug, reference) in [
        ("steal-db", "file:database-url"),
        ("steal-vault", "file:vault-token"),
        ("steal-hook", "file:webhooks/ops"),
    ] {
        let mut body = tenant_body(slug);
        body["db_secret_ref"] = json!(reference);

        let (status, err) = app.call(Method::POST, "/v1/tenants", Some(body)).await;

        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reference}: {err}"
        );
        assert_eq!(err["error"]["field"], "db_secret_ref", "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("under tenants/") && message.contains("DROVER_FILE_SECRET_PREFIX"),
            "{message}"
        );
        assert_eq!(app.tenant_rows(&format!("slug = '{slug}'")).await, 0);
    }
    // PATCHing an existing tenant there is refused the same way.
    assert_eq!(
        app.create_tenant(&tenant_body("acme")).await.status(),
        StatusCode::CREATED
    );
    let patched = app
        .patch_tenant("acme", &json!({"db_secret_ref": "file:database-url"}))
        .await;
    assert_eq!(patched.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.event_types("acme").await, ["created"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_row_planted_with_drovers_own_file_is_refused_when_resolved() {
    let secrets = deployed_secrets();
    let app = app_on(&secrets).await;
    app.control_db()
        .await
        .batch_execute(
            "INSERT INTO control_plane.tenants \
               (slug, display_name, db_name, db_host, db_user, db_secret_ref, status) \
             VALUES ('planted', 'x', 't_planted', 'db1', 'u', 'file:database-url', 'active'), \
                    ('planted-v', 'x', 't_planted_v', 'db1', 'u', 'file:vault-token', 'active')",
        )
        .await
        .unwrap();

    for slug in ["planted", "planted-v"] {
        let resp = app.resolve(slug).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();

        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{text}");
        assert!(text.contains("secret_ref_refused"), "{text}");
        assert!(text.contains("file_secret_prefix"), "{text}");
        assert!(
            !text.contains("control-db-password") && !text.contains(VAULT_TOKEN),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_key_outside_the_webhook_directory_is_422() {
    let secrets = deployed_secrets();
    let app = app_on(&secrets).await;
    let hook = |name: &str, reference: &str| {
        json!({"name": name, "url": "https://example.com/h", "events": ["wave.*"],
               "secret_ref": reference})
    };

    for reference in ["file:database-url", "file:vault-token", "file:tenants/acme"] {
        let (status, err) = app
            .call(Method::POST, "/v1/webhooks", Some(hook("steal", reference)))
            .await;

        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reference}: {err}"
        );
        assert_eq!(err["error"]["field"], "secret_ref", "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("under webhooks/") && message.contains("DROVER_WEBHOOK_SECRET_PREFIX"),
            "{message}"
        );
    }
    let (status, err) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(hook("ops", "file:webhooks/ops")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{err}");
    let (_, list) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

/// `drover serve` with `env` on top of a control-DB URL it never reaches: its exit status
/// and stderr.
fn serve(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = drover_cmd()
        .arg("serve")
        .env(
            "DROVER_DATABASE_URL",
            "postgres://u@127.0.0.1:1/unreachable",
        )
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_refuses_to_start_when_its_own_files_lie_inside_a_reference_directory() {
    let secrets = SecretsDir::new();
    secrets.put("tenants/admin-token", ADMIN_TOKEN);
    secrets.put("webhooks/vault-token", VAULT_TOKEN);
    secrets.put("tls/server.crt", "not a certificate");
    secrets.put("tenants/server.key", "not a key");
    let dir = secrets.path();
    // Inside tenants/ as written, outside once `..` is resolved: not refused for that.
    let cert = format!("{dir}/tenants/../tls/server.crt");
    let vault_token = format!("{dir}/webhooks/vault-token");
    // Outside as written, inside once the link is followed: refused for that.
    let linked_key = temp_dir("tls").join("server.key");
    std::os::unix::fs::symlink(secrets.0.join("tenants/server.key"), &linked_key).unwrap();

    let token_inside = serve(&[
        ("DROVER_SECRETS_DIR", dir),
        ("DROVER_ADMIN_TOKEN_REF", "file:tenants/admin-token"),
    ]);
    let vault_inside = serve(&[
        ("DROVER_SECRETS_DIR", dir),
        ("DROVER_ADMIN_TOKEN", ADMIN_TOKEN),
        ("DROVER_VAULT_ADDR", "http://127.0.0.1:1"),
        ("DROVER_VAULT_TOKEN_FILE", &vault_token),
    ]);
    // Paths are compared canonical: the key named through a link elsewhere is found.
    let key_through_link = serve(&[
        ("DROVER_SECRETS_DIR", dir),
        ("DROVER_ADMIN_TOKEN", ADMIN_TOKEN),
        ("DROVER_TLS_CERT_FILE", &cert),
        ("DROVER_TLS_KEY_FILE", linked_key.to_str().unwrap()),
    ]);

    let (code, err) = token_inside;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("DROVER_ADMIN_TOKEN_REF (environment)")
            && err.contains("file_secret_prefix, DROVER_FILE_SECRET_PREFIX"),
        "{err}"
    );
    let (code, err) = vault_inside;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("DROVER_VAULT_TOKEN_FILE (environment)")
            && err.contains("webhook_secret_prefix, DROVER_WEBHOOK_SECRET_PREFIX"),
        "{err}"
    );
    assert!(!err.contains(VAULT_TOKEN), "{err}");
    let (code, err) = key_through_link;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("DROVER_TLS_KEY_FILE (environment)") && err.contains("file_secret_prefix"),
        "{err}"
    );
    assert!(!err.contains("DROVER_TLS_CERT_FILE"), "{err}");
    let _ = std::fs::remove_dir_all(linked_key.parent().unwrap());
}

#[test]
fn env_prefixes_reaching_well_known_variable_families_are_refused() {
    for (prefix, family) in [
        ("PG", "PG"),
        ("P", "PG"),
        ("AWS_", "AWS_"),
        ("DROVER_T_", "DROVER_"),
        ("VAULT_", "VAULT_"),
        ("BAO_", "BAO_"),
        ("GOOGLE_", "GOOGLE_"),
        ("AZURE_", "AZURE_"),
        ("HOME", "HOME"),
    ] {
        let out = drover_cmd()
            .arg("check-config")
            .env("DROVER_ENV_SECRET_PREFIX", prefix)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);

        assert_eq!(out.status.code(), Some(1), "{prefix}: {err}");
        assert!(
            err.contains("DROVER_ENV_SECRET_PREFIX (environment)")
                && err.contains(&format!("must not match the {family}* variables")),
            "{prefix}: {err}"
        );
    }
    let config = temp_dir("config").join("drover.toml");
    std::fs::write(&config, "env_secret_prefix = \"\"\n").unwrap();
    let out = drover_cmd()
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("env_secret_prefix"), "{err}");
}

/// An admin role for provisioning (CREATEDB, CREATEROLE); its URL.
async fn provisioner() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "refs_prov_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
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

/// The payload of the tenant's `deleted` event.
async fn deleted_payload(app: &TestApp, slug: &str) -> Value {
    app.control_db()
        .await
        .query_one(
            "SELECT e.payload FROM control_plane.tenant_events e JOIN control_plane.tenants t \
             ON t.id = e.tenant_id WHERE t.slug = $1 AND e.event_type = 'deleted'",
            &[&slug],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprovisioning_keeps_a_secret_the_ref_was_patched_to_and_removes_its_own() {
    let secrets = deployed_secrets();
    secrets.put("tenants/precious", "an operator's password");
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_PROVISION_URL", &provisioner().await),
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
        ])
        .spawn()
        .await;
    let n = std::process::id();
    let (own, patched) = (format!("refs-own-{n}"), format!("refs-patched-{n}"));
    for slug in [&own, &patched] {
        let created = app
            .create_tenant_waiting(&json!({"slug": slug, "provision": true}))
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        assert!(secrets.0.join(format!("tenants/{slug}")).exists());
    }
    let to_own_file = app
        .patch_tenant(&patched, &json!({"db_secret_ref": "file:database-url"}))
        .await;
    assert_eq!(to_own_file.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let to_precious = app
        .patch_tenant(&patched, &json!({"db_secret_ref": "file:tenants/precious"}))
        .await;
    assert_eq!(to_precious.status(), StatusCode::OK);

    let kept = app.delete_tenant_and_database(&patched).await;
    let removed = app.delete_tenant_and_database(&own).await;

    assert_eq!(
        kept.status(),
        StatusCode::OK,
        "{}",
        kept.text().await.unwrap()
    );
    assert_eq!(removed.status(), StatusCode::OK);
    assert!(secrets.0.join("tenants/precious").exists());
    assert!(secrets.0.join("database-url").exists());
    let payload = deleted_payload(&app, &patched).await;
    assert_eq!(payload["secret_removed"], false, "{payload}");
    assert!(
        payload["secret_kept"]
            .as_str()
            .is_some_and(|why| why.contains("drover did not write it")),
        "{payload}"
    );
    assert!(!secrets.0.join(format!("tenants/{own}")).exists());
    let payload = deleted_payload(&app, &own).await;
    assert_eq!(payload["secret_removed"], true, "{payload}");
    assert_eq!(payload.get("secret_kept"), None, "{payload}");
}
