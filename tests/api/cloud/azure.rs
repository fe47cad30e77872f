//! `azure-kv:` end to end: a real daemon, Microsoft's Key Vault client with a managed
//! identity (the App Service token endpoint, `IDENTITY_ENDPOINT`, served by the fake), the
//! Key Vault protocol fake over https, real tenant databases with SCRAM logins.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::fake_azure::{FakeAzure, IDENTITY_HEADER};
use super::*;

const VAULT: &str = "drover-test-kv";

/// A daemon reading `azure-kv:` from `fake`, with `extra` settings, and its control DB's URL.
async fn daemon(fake: &FakeAzure, extra: &[(&str, &str)]) -> (Daemon, String) {
    let control = fresh_control_database().await;
    let identity = fake.identity_endpoint();
    let ca = fake.ca_file.display().to_string();
    let mut env = vec![
        ("IDENTITY_ENDPOINT", identity.as_str()),
        ("IDENTITY_HEADER", IDENTITY_HEADER),
        ("DROVER_AZURE_VAULTS", VAULT),
        ("DROVER_AZURE_KV_ENDPOINT", fake.url.as_str()),
        ("DROVER_AZURE_KV_CA_FILE", ca.as_str()),
        ("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN),
    ];
    env.extend_from_slice(extra);
    (Daemon::start(&control, "azure", &env).await, control)
}

#[tokio::test]
async fn an_azure_json_secret_resolves_by_its_key_and_the_tenant_logs_in_and_failures_are_sorted() {
    let fake = FakeAzure::start().await;
    let pw = "az-Pa55:w/rd@x";
    let (slug, _) = names("akv");
    let db = password_tenant_db("takv", pw).await;
    fake.put(
        "tenants-acme",
        &json!({"username": db, "password": pw}).to_string(),
        &[],
    );
    let (d, _) = daemon(
        &fake,
        &[
            ("DROVER_SECRET_TTL", "300ms"),
            ("DROVER_SECRET_STALE_FOR", "1h"),
            ("DROVER_SECRET_NEGATIVE_TTL", "50ms"),
        ],
    )
    .await;
    let reference = format!("azure-kv:{VAULT}/tenants-acme#password");
    let created = d.create_tenant(&tenant_on(&slug, &db, &reference)).await;
    let mut failing = Vec::new();
    for (name, secret, status) in [
        ("adenied", "tenants-denied", 403),
        ("amissing", "tenants-missing", 404),
        ("athrottled", "tenants-throttled", 429),
    ] {
        let (s, other_db) = names(name);
        let r = format!("azure-kv:{VAULT}/{secret}#password");
        assert_eq!(
            d.create_tenant(&tenant_on(&s, &other_db, &r))
                .await
                .status(),
            StatusCode::CREATED
        );
        fake.fail(secret, Some(status));
        failing.push(s);
    }

    let (status, first) = resolve(&d, &slug).await;
    let logged_in = logs_in(&first).await;
    let (gets, with_token) = fake.requests("/secrets/tenants-acme");
    let (challenges, tokens) = fake.auth_counts();
    fake.fail("tenants-acme", Some(429));
    let stale_before = stale_serves(&d).await;
    let served_stale = wait_until(Duration::from_secs(5), || async {
        resolve(&d, &slug).await;
        stale_serves(&d).await > stale_before
    })
    .await;
    let (stale_status, stale) = resolve(&d, &slug).await;
    let mut answers = Vec::new();
    for s in &failing {
        answers.push(resolve(&d, s).await);
    }

    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(
        logged_in,
        "the tenant logs in with the resolved DSN: {first}"
    );
    assert!(
        challenges >= 1,
        "the first request went without a token and was challenged"
    );
    assert!(
        tokens >= 1,
        "a token came from the managed identity endpoint"
    );
    assert!(
        with_token >= 1 && gets > with_token - 1,
        "the read was retried with the bearer token ({gets} requests, {with_token} with it)"
    );
    assert!(
        served_stale,
        "a throttled read serves the cached value stale"
    );
    assert_eq!(
        (stale_status, &stale["dsn"]),
        (StatusCode::OK, &first["dsn"])
    );
    let texts: Vec<String> = answers.iter().map(|(_, b)| b.to_string()).collect();
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    assert!(
        texts[0].contains("access denied by the backend"),
        "{}",
        texts[0]
    );
    assert!(texts[1].contains("not found"), "{}", texts[1]);
    assert!(
        texts[2].contains("rate limit was reached; retry after 9 s"),
        "{}",
        texts[2]
    );
    assert!(texts.iter().all(|t| !t.contains(pw)));
}

#[tokio::test]
async fn an_azure_ref_outside_the_listed_vaults_or_prefixes_is_refused_at_write_and_when_planted() {
    let fake = FakeAzure::start().await;
    fake.put("drover-admin", "admin-pw", &[]);
    let (d, control_url) = daemon(&fake, &[]).await;
    let (slug, db) = names("ascope");

    let vault = d
        .create_tenant(&tenant_on(&slug, &db, "azure-kv:other-kv/tenants-acme"))
        .await;
    let vault_status = vault.status();
    let vault_body = vault.text().await.unwrap();
    let prefix = d
        .create_tenant(&tenant_on(
            &slug,
            &db,
            &format!("azure-kv:{VAULT}/drover-admin"),
        ))
        .await;
    let prefix_status = prefix.status();
    let prefix_body = prefix.text().await.unwrap();
    let bad_name = d
        .create_tenant(&tenant_on(
            &slug,
            &db,
            &format!("azure-kv:{VAULT}/tenants_acme"),
        ))
        .await
        .status();
    let ok_ref = format!("azure-kv:{VAULT}/tenants-acme");
    assert_eq!(
        d.create_tenant(&tenant_on(&slug, &db, &ok_ref))
            .await
            .status(),
        StatusCode::CREATED
    );
    connect(&control_url)
        .await
        .execute(
            "UPDATE control_plane.tenants SET db_secret_ref = $1 WHERE slug = $2",
            &[&format!("azure-kv:{VAULT}/drover-admin"), &slug],
        )
        .await
        .unwrap();
    let planted = wait_until(Duration::from_secs(10), || async {
        resolve(&d, &slug).await.1["error"]["code"] == "secret_ref_refused"
    })
    .await;
    let (_, refused) = resolve(&d, &slug).await;

    assert_eq!(vault_status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(vault_body.contains("azure_vaults"), "{vault_body}");
    assert_eq!(prefix_status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        prefix_body.contains("azure_kv_allowed_prefixes"),
        "{prefix_body}"
    );
    assert_eq!(
        bad_name,
        StatusCode::UNPROCESSABLE_ENTITY,
        "Key Vault names allow no '_'"
    );
    assert!(planted, "the planted reference is refused: {refused}");
    assert!(
        refused.to_string().contains("azure_kv_allowed_prefixes"),
        "{refused}"
    );
    assert_eq!(
        fake.requests("drover-admin").0,
        0,
        "the vault was never asked"
    );
}

#[tokio::test]
async fn provisioning_with_an_azure_ref_creates_the_secret_and_deprovisioning_deletes_only_what_drover_created(
) {
    let fake = FakeAzure::start().await;
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let (new_slug, new_db) = names("aprov");
    let (old_slug, old_db) = names("akeep");
    // A secret someone else set: drover writes a version, and leaves it on deprovisioning.
    fake.put(&format!("tenants-{old_slug}"), r#"{"owner":"ops"}"#, &[]);
    let provision_url = provisioner_url().await;
    let (d, _) = daemon(
        &fake,
        &[
            ("DROVER_PROVISION_URL", &provision_url),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
            (
                "DROVER_PROVISION_SECRET_REF",
                &format!("azure-kv:{VAULT}/tenants-{{slug}}#password"),
            ),
        ],
    )
    .await;
    let body = |slug: &str, db: &str| {
        let (host, port) = server_host_port();
        json!({"slug": slug, "display_name": slug, "db_name": db, "db_user": db,
               "db_host": host, "db_port": port, "provision": true})
    };

    let created = d.create_tenant_waiting(&body(&new_slug, &new_db)).await;
    let created_status = created.status();
    let created_body = created.text().await.unwrap();
    assert_eq!(created_status, StatusCode::CREATED, "{created_body}");
    let stored = fake.secret(&format!("tenants-{new_slug}"));
    let kept = d
        .create_tenant_waiting(&body(&old_slug, &old_db))
        .await
        .status();
    let foreign = fake.secret(&format!("tenants-{old_slug}")).unwrap();
    require_password(&new_db).await;
    let (status, resolved) = resolve(&d, &new_slug).await;
    let logged_in = logs_in(&resolved).await;
    let deleted = d.delete_tenant_and_database(&new_slug).await.status();
    let deleted_kept = d.delete_tenant_and_database(&old_slug).await.status();

    let stored = stored.expect("provisioning set the secret");
    let (_, value, tags) = stored.versions.last().unwrap();
    assert_eq!(tags.get("drover-created").map(String::as_str), Some("true"));
    let doc: serde_json::Value = serde_json::from_str(value).unwrap();
    assert_eq!(doc["password"].as_str().map(str::len), Some(43));
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert!(
        logged_in,
        "the tenant logs in with the provisioned password"
    );
    assert_eq!(kept, StatusCode::CREATED);
    let (_, latest, latest_tags) = foreign.versions.last().unwrap();
    let latest: serde_json::Value = serde_json::from_str(latest).unwrap();
    assert_eq!(latest["owner"], "ops", "the other fields are kept");
    assert!(latest["password"].is_string());
    assert!(
        latest_tags.get("drover-created").is_none(),
        "a secret drover did not create is not marked"
    );
    assert_eq!((deleted, deleted_kept), (StatusCode::OK, StatusCode::OK));
    assert!(
        fake.secret(&format!("tenants-{new_slug}")).is_none(),
        "drover's own secret is deleted (soft delete)"
    );
    assert_eq!(fake.deleted(), [format!("tenants-{new_slug}")]);
    assert!(
        fake.secret(&format!("tenants-{old_slug}")).is_some(),
        "a secret drover did not create is kept"
    );
}

/// Pins a rotated Key Vault secret being missed by the cache: a new version must replace
/// the cached password at the next refresh (so the application logs in with it) and count
/// as a rotation of `azure-kv`.
#[tokio::test]
async fn a_new_azure_secret_version_replaces_the_cached_password_and_counts_a_rotation() {
    let fake = FakeAzure::start().await;
    let (slug, _) = names("arot");
    let db = password_tenant_db("tarot", "old-az-pw").await;
    fake.put(
        "tenants-rot",
        &json!({"password": "old-az-pw"}).to_string(),
        &[],
    );
    let (d, _) = daemon(&fake, &[("DROVER_SECRET_TTL", "300ms")]).await;
    let reference = format!("azure-kv:{VAULT}/tenants-rot#password");
    let created = d.create_tenant(&tenant_on(&slug, &db, &reference)).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let (status, first) = resolve(&d, &slug).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(logs_in(&first).await, "the first password does not log in");

    fake.put(
        "tenants-rot",
        &json!({"password": "new-az-pw"}).to_string(),
        &[],
    );
    set_role_password(&db, "new-az-pw").await;
    new_version_is_served_and_counted(&d, &slug, "azure-kv").await;
}
