//! `gcp-sm:` end to end: a real daemon, Google's client with Application Default
//! Credentials (an `authorized_user` file whose token endpoint is the fake), the Secret
//! Manager protocol fake, real tenant databases with SCRAM logins.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::fake_gcp::{FakeGcp, Fault, TOKEN};
use super::*;

const PROJECT: &str = "drover-test";

/// A daemon reading `gcp-sm:` from `fake`, with `extra` settings, and its control DB's URL.
async fn daemon(fake: &FakeGcp, files: &SecretsDir, extra: &[(&str, &str)]) -> (Daemon, String) {
    files.put("gcp-adc.json", &fake.adc_json());
    let adc = format!("{}/gcp-adc.json", files.path());
    let control = fresh_control_database().await;
    let mut env = vec![
        ("GOOGLE_APPLICATION_CREDENTIALS", adc.as_str()),
        ("DROVER_GCP_PROJECTS", PROJECT),
        ("DROVER_GCP_SM_ENDPOINT", fake.url.as_str()),
        ("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN),
    ];
    env.extend_from_slice(extra);
    (Daemon::start(&control, "gcp", &env).await, control)
}

#[tokio::test]
async fn a_gcp_json_secret_resolves_by_its_key_and_the_tenant_logs_in_and_failures_are_sorted() {
    let fake = FakeGcp::start().await;
    let files = SecretsDir::new();
    let pw = "gcp-Pa55:w/rd@x";
    let (slug, _) = names("gsm");
    let db = password_tenant_db("tgsm", pw).await;
    fake.put(
        PROJECT,
        "tenants-acme",
        &json!({"username": db, "password": pw}).to_string(),
        &[],
    );
    fake.put(PROJECT, "tenants-crc", r#"{"password":"x"}"#, &[]);
    let (d, _) = daemon(
        &fake,
        &files,
        &[
            ("DROVER_SECRET_TTL", "300ms"),
            ("DROVER_SECRET_STALE_FOR", "1h"),
            ("DROVER_SECRET_NEGATIVE_TTL", "50ms"),
        ],
    )
    .await;
    let reference = format!("gcp-sm:projects/{PROJECT}/secrets/tenants-acme#password");
    let created = d.create_tenant(&tenant_on(&slug, &db, &reference)).await;
    let mut failing = Vec::new();
    for (name, secret) in [
        ("gdenied", "tenants-denied"),
        ("gmissing", "tenants-missing"),
        ("gcrc", "tenants-crc"),
        ("gthrottled", "tenants-throttled"),
    ] {
        let (s, other_db) = names(name);
        let r = format!("gcp-sm:projects/{PROJECT}/secrets/{secret}#password");
        assert_eq!(
            d.create_tenant(&tenant_on(&s, &other_db, &r))
                .await
                .status(),
            StatusCode::CREATED
        );
        failing.push(s);
    }
    fake.fail("tenants-denied", Some(Fault::Status(403)));
    fake.fail("tenants-missing", Some(Fault::Status(404)));
    fake.fail("tenants-crc", Some(Fault::BadCrc));
    fake.fail("tenants-throttled", Some(Fault::Status(429)));

    let (status, first) = resolve(&d, &slug).await;
    let logged_in = logs_in(&first).await;
    let (access, with_token) = fake.requests("tenants-acme/versions/latest:access");
    fake.fail("tenants-acme", Some(Fault::Status(429)));
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
        fake.tokens_issued() >= 1,
        "a token came from the ADC token endpoint"
    );
    assert!(
        access >= 1 && access == with_token,
        "every access carried the bearer token {TOKEN}"
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
    assert!(texts[2].contains("dataCrc32c"), "{}", texts[2]);
    assert!(
        texts[3].contains("rate limit was reached; retry after 7 s"),
        "{}",
        texts[3]
    );
    assert!(texts.iter().all(|t| !t.contains(pw)));
}

#[tokio::test]
async fn a_gcp_ref_outside_the_listed_projects_or_prefixes_is_refused_at_write_and_when_planted() {
    let fake = FakeGcp::start().await;
    let files = SecretsDir::new();
    fake.put("other-project", "tenants-acme", "pw", &[]);
    fake.put(PROJECT, "drover-admin", "admin-pw", &[]);
    let (d, control_url) = daemon(&fake, &files, &[]).await;
    let (slug, db) = names("gscope");

    let project = d
        .create_tenant(&tenant_on(
            &slug,
            &db,
            "gcp-sm:projects/other-project/secrets/tenants-acme",
        ))
        .await;
    let project_status = project.status();
    let project_body = project.text().await.unwrap();
    let prefix = d
        .create_tenant(&tenant_on(
            &slug,
            &db,
            &format!("gcp-sm:projects/{PROJECT}/secrets/drover-admin"),
        ))
        .await;
    let prefix_status = prefix.status();
    let prefix_body = prefix.text().await.unwrap();
    let ok_ref = format!("gcp-sm:projects/{PROJECT}/secrets/tenants-acme");
    assert_eq!(
        d.create_tenant(&tenant_on(&slug, &db, &ok_ref))
            .await
            .status(),
        StatusCode::CREATED
    );
    let control = connect(&control_url).await;
    control
        .execute(
            "UPDATE control_plane.tenants SET db_secret_ref = $1 WHERE slug = $2",
            &[
                &format!("gcp-sm:projects/{PROJECT}/secrets/drover-admin"),
                &slug,
            ],
        )
        .await
        .unwrap();
    let planted = wait_until(Duration::from_secs(10), || async {
        resolve(&d, &slug).await.1["error"]["code"] == "secret_ref_refused"
    })
    .await;
    let (_, refused) = resolve(&d, &slug).await;

    assert_eq!(project_status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(project_body.contains("gcp_projects"), "{project_body}");
    assert_eq!(prefix_status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        prefix_body.contains("gcp_sm_allowed_prefixes"),
        "{prefix_body}"
    );
    assert!(planted, "the planted reference is refused: {refused}");
    assert!(
        refused.to_string().contains("gcp_sm_allowed_prefixes"),
        "{refused}"
    );
    assert_eq!(
        fake.requests("drover-admin").0,
        0,
        "the store was never asked"
    );
    assert!(!refused.to_string().contains("admin-pw"));
}

#[tokio::test]
async fn provisioning_with_a_gcp_ref_creates_the_secret_and_deprovisioning_deletes_only_what_drover_created(
) {
    let fake = FakeGcp::start().await;
    let files = SecretsDir::new();
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let (new_slug, new_db) = names("gprov");
    let (old_slug, old_db) = names("gkeep");
    // A secret someone else made: drover adds a version, and leaves it on deprovisioning.
    fake.put(
        PROJECT,
        &format!("tenants-{old_slug}"),
        r#"{"owner":"ops"}"#,
        &[],
    );
    let provision_url = provisioner_url().await;
    let (d, _) = daemon(
        &fake,
        &files,
        &[
            ("DROVER_PROVISION_URL", &provision_url),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
            (
                "DROVER_PROVISION_SECRET_REF",
                &format!("gcp-sm:projects/{PROJECT}/secrets/tenants-{{slug}}#password"),
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
    let kept = d
        .create_tenant_waiting(&body(&old_slug, &old_db))
        .await
        .status();
    assert_eq!(created_status, StatusCode::CREATED, "{created_body}");
    let stored = fake.secret(PROJECT, &format!("tenants-{new_slug}"));
    let foreign = fake
        .secret(PROJECT, &format!("tenants-{old_slug}"))
        .unwrap();
    require_password(&new_db).await;
    let (status, resolved) = resolve(&d, &new_slug).await;
    let logged_in = logs_in(&resolved).await;
    let deleted = d.delete_tenant_and_database(&new_slug).await.status();
    let deleted_kept = d.delete_tenant_and_database(&old_slug).await.status();

    assert_eq!(created_status, StatusCode::CREATED, "{created_body}");
    let stored = stored.expect("provisioning created the secret");
    assert_eq!(
        stored.labels.get("drover-created").map(String::as_str),
        Some("true")
    );
    let doc: serde_json::Value = serde_json::from_slice(stored.versions.last().unwrap()).unwrap();
    assert_eq!(doc["password"].as_str().map(str::len), Some(43));
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert!(
        logged_in,
        "the tenant logs in with the provisioned password"
    );
    assert_eq!(kept, StatusCode::CREATED);
    let latest: serde_json::Value =
        serde_json::from_slice(foreign.versions.last().unwrap()).unwrap();
    assert_eq!(latest["owner"], "ops", "the other fields are kept");
    assert!(latest["password"].is_string());
    assert_eq!((deleted, deleted_kept), (StatusCode::OK, StatusCode::OK));
    assert!(
        fake.secret(PROJECT, &format!("tenants-{new_slug}"))
            .is_none(),
        "drover's own secret is deleted"
    );
    assert!(
        fake.secret(PROJECT, &format!("tenants-{old_slug}"))
            .is_some(),
        "a secret drover did not create is kept"
    );
}

/// Pins a rotated Google secret being missed by the cache: a new version must replace the
/// cached password at the next refresh (so the application logs in with it) and count as
/// a rotation of `gcp-sm`.
#[tokio::test]
async fn a_new_gcp_secret_version_replaces_the_cached_password_and_counts_a_rotation() {
    let fake = FakeGcp::start().await;
    let files = SecretsDir::new();
    let (slug, _) = names("grot");
    let db = password_tenant_db("tgrot", "old-gcp-pw").await;
    fake.put(
        PROJECT,
        "tenants-rot",
        &json!({"password": "old-gcp-pw"}).to_string(),
        &[],
    );
    let (d, _) = daemon(&fake, &files, &[("DROVER_SECRET_TTL", "300ms")]).await;
    let reference = format!("gcp-sm:projects/{PROJECT}/secrets/tenants-rot#password");
    let created = d.create_tenant(&tenant_on(&slug, &db, &reference)).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let (status, first) = resolve(&d, &slug).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(logs_in(&first).await, "the first password does not log in");

    fake.put(
        PROJECT,
        "tenants-rot",
        &json!({"password": "new-gcp-pw"}).to_string(),
        &[],
    );
    set_role_password(&db, "new-gcp-pw").await;
    new_version_is_served_and_counted(&d, &slug, "gcp-sm").await;
}
