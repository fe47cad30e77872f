//! Resolution of a slug that was soft-deleted and then registered again.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    password_tenant_db, server_host_port, tenant_body, wait_until, SecretsDir, TestApp,
};

/// The body registering `slug` on database (and role) `db`, its password behind `secret`.
fn on_database(slug: &str, db: &str, secret: &str) -> Value {
    let (host, port) = server_host_port();
    let mut body = tenant_body(slug);
    body["db_host"] = json!(host);
    body["db_port"] = json!(port);
    body["db_name"] = json!(db);
    body["db_user"] = json!(db);
    body["db_secret_ref"] = json!(format!("file:{secret}"));
    body
}

/// The database a resolution of `slug` names, or its status when it is not 200.
async fn resolved_db(app: &TestApp, slug: &str) -> Result<String, StatusCode> {
    let resp = app.resolve(slug).await;
    if resp.status() != StatusCode::OK {
        return Err(resp.status());
    }
    let body: Value = resp.json().await.unwrap();
    Ok(body["dbname"].as_str().unwrap().to_string())
}

// Pins: resolution that reads the soft-deleted row of a re-created slug (a lookup without
// `deleted_at IS NULL`, or a cache entry keyed by slug that outlives the delete on another
// replica), and a "not found" remembered past the slug's re-creation. Both replicas resolve
// the slug before each change, so both have something cached to get wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slug_re_created_after_a_soft_delete_resolves_to_the_new_database_on_every_replica() {
    let secrets = SecretsDir::new();
    secrets.put("tenants/acme-old", "old-password");
    secrets.put("tenants/acme-new", "new-password");
    let env = [("DROVER_SECRETS_DIR", secrets.path())];
    let first = TestApp::builder().envs(&env).spawn().await;
    let second = TestApp::builder()
        .control_db(&first.database_url)
        .envs(&env)
        .env("DROVER_INSTANCE_ID", "second")
        .spawn()
        .await;
    let old_db = password_tenant_db("reold", "old-password").await;
    let new_db = password_tenant_db("renew", "new-password").await;
    let created = first
        .create_tenant(&on_database("acme", &old_db, "tenants/acme-old"))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(resolved_db(&first, "acme").await, Ok(old_db.clone()));
    assert_eq!(resolved_db(&second, "acme").await, Ok(old_db.clone()));

    assert_eq!(first.delete_tenant("acme").await.status(), StatusCode::OK);
    let gone = wait_until(Duration::from_secs(5), || async {
        resolved_db(&second, "acme").await == Err(StatusCode::NOT_FOUND)
    })
    .await;
    let recreated = first
        .create_tenant(&on_database("acme", &new_db, "tenants/acme-new"))
        .await;
    let recreated_status = recreated.status();
    let on_new = wait_until(Duration::from_secs(5), || async {
        resolved_db(&first, "acme").await == Ok(new_db.clone())
            && resolved_db(&second, "acme").await == Ok(new_db.clone())
    })
    .await;

    assert!(gone, "the other replica still resolves the deleted tenant");
    assert_eq!(recreated_status, StatusCode::CREATED);
    assert!(
        on_new,
        "the re-created slug resolves to {:?} and {:?}, not {new_db}",
        resolved_db(&first, "acme").await,
        resolved_db(&second, "acme").await
    );
    for app in [&first, &second] {
        let body: Value = app.resolve("acme").await.json().await.unwrap();
        let (client, conn) =
            tokio_postgres::connect(body["dsn"].as_str().unwrap(), tokio_postgres::NoTls)
                .await
                .expect("the DSN logs in with the new tenant's password");
        tokio::spawn(conn);
        let user: String = client
            .query_one("SELECT current_user::text AS u", &[])
            .await
            .unwrap()
            .get("u");
        assert_eq!(user, new_db);
    }
}
