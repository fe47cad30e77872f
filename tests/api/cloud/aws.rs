//! The `aws-sm:` secret backend against moto's emulation of AWS Secrets Manager: a real
//! `drover serve` process that finds moto through the SDK's own `AWS_ENDPOINT_URL`, real
//! tenant databases that need the password, and the backend's batch read on its own.
//!
//! Every test but the stale one shares one moto server ([`Moto::shared`]) and keeps to its
//! own secret name prefix ([`Moto::prefix`]), so they run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use drover::secrets::aws::AwsSmBackend;
use drover::secrets::{AwsSmSettings, SecretBackend, SecretError, SecretRef};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::helpers::*;

/// A real daemon on its own control database, reaching `moto` through the SDK's
/// environment; `extra` adds settings.
async fn daemon(moto: &Moto, extra: &[(&str, &str)]) -> (Daemon, String) {
    let control = fresh_control_database().await;
    let aws = moto.env();
    let mut env: Vec<(&str, &str)> = aws.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    (Daemon::start(&control, "aws", &env).await, control)
}

/// A tenant row for `slug` on the test server with this reference.
fn tenant(slug: &str, db: &str, reference: &str) -> Value {
    let (host, port) = server_host_port();
    let mut body = tenant_body(slug);
    body["db_host"] = json!(host);
    body["db_port"] = json!(port);
    body["db_name"] = json!(db);
    body["db_user"] = json!(db);
    body["db_secret_ref"] = json!(reference);
    body
}

fn slug(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Logs in with a resolved DSN over password authentication; whether `SELECT 1` ran.
async fn logs_in(dsn: &str) -> bool {
    match tokio_postgres::connect(dsn, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.is_ok()
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_json_key_of_an_aws_secret_resolves_to_the_password_the_tenant_logs_in_with() {
    let Some(moto) = Moto::shared().await else {
        return;
    };
    let prefix = Moto::prefix("resolve");
    let password = "aws-p@ss:w/o?r#d% 'q'";
    let db = password_tenant_db("taws", password).await;
    let sm = moto.client().await;
    sm.create_secret()
        .name(format!("{prefix}acme"))
        .secret_string(json!({"username": db, "password": password}).to_string())
        .send()
        .await
        .expect("plant the secret");
    let (app, _) = daemon(moto, &[]).await;
    let slug = slug("aws-resolve");
    let reference = format!("aws-sm:{prefix}acme#password");
    let created = app.create_tenant(&tenant(&slug, &db, &reference)).await;
    assert_eq!(created.status(), StatusCode::CREATED);

    let resp = app.resolve(&slug).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    let dsn = body["dsn"].as_str().unwrap_or_default();

    assert_eq!(status, StatusCode::OK, "{body}");
    // The role is a member of drover_password_auth: only its password logs it in.
    assert!(logs_in(dsn).await, "the resolved DSN logs in");
}

#[tokio::test]
async fn an_aws_reference_outside_the_allowed_prefixes_is_refused_at_write_and_when_planted_at_read(
) {
    let Some(moto) = Moto::shared().await else {
        return;
    };
    let sm = moto.client().await;
    let outside = format!("prod/db-master-{}", std::process::id());
    sm.create_secret()
        .name(&outside)
        .secret_string(json!({"password": "the-production-master"}).to_string())
        .send()
        .await
        .expect("plant the secret");
    let (app, control) = daemon(moto, &[]).await;
    let reference = format!("aws-sm:{outside}#password");
    let arn_reference = "aws-sm:arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/x-AbCdEf";

    let mut refusals = Vec::new();
    for r in [reference.as_str(), arn_reference] {
        let resp = app.create_tenant(&tenant(&slug("aws-out"), "t_x", r)).await;
        refusals.push((resp.status(), resp.text().await.unwrap()));
    }
    let planted = slug("aws-planted");
    connect(&control)
        .await
        .execute(
            "INSERT INTO control_plane.tenants \
               (slug, display_name, db_name, db_host, db_user, db_secret_ref, status) \
             VALUES ($1, 'x', 't_planted', 'db1', 'u', $2, 'active')",
            &[&planted, &reference],
        )
        .await
        .unwrap();
    let read = app.resolve(&planted).await;
    let (read_status, read_text) = (read.status(), read.text().await.unwrap());

    for (status, text) in &refusals {
        assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{text}");
        assert!(text.contains("aws_sm_allowed_prefixes"), "{text}");
        assert!(text.contains("tenants/"), "{text}");
    }
    assert_eq!(
        read_status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{read_text}"
    );
    assert!(read_text.contains("secret_ref_refused"), "{read_text}");
    assert!(read_text.contains("aws_sm_allowed_prefixes"), "{read_text}");
    assert!(!read_text.contains("the-production-master"), "{read_text}");
}

/// An admin role for `DROVER_PROVISION_URL` (CREATEDB CREATEROLE); returns its URL.
async fn provisioner() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "awsprov_{}_{}",
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

#[tokio::test]
async fn provisioning_creates_the_aws_secret_and_deprovisioning_schedules_only_drovers_own_for_deletion(
) {
    let Some(moto) = Moto::shared().await else {
        return;
    };
    let prefix = Moto::prefix("provision");
    let sm = moto.client().await;
    sm.create_secret()
        .name(format!("{prefix}precious"))
        .secret_string(json!({"password": "an operator's password"}).to_string())
        .send()
        .await
        .expect("plant the secret");
    let migrations = MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]);
    let template = format!("aws-sm:{prefix}{{slug}}#password");
    let (app, _) = daemon(
        moto,
        &[
            ("DROVER_PROVISION_URL", &provisioner().await),
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
            ("DROVER_PROVISION_SECRET_REF", &template),
        ],
    )
    .await;
    let (own, patched) = (slug("aws-own"), slug("aws-patched"));

    let mut created = Vec::new();
    for s in [&own, &patched] {
        let resp = app
            .create_tenant_waiting(&json!({"slug": s, "provision": true}))
            .await;
        created.push((resp.status(), resp.text().await.unwrap()));
    }
    let stored = sm
        .get_secret_value()
        .secret_id(format!("{prefix}{own}"))
        .send()
        .await
        .expect("the provisioned secret exists in moto");
    let fields: Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    let tags = sm
        .describe_secret()
        .secret_id(format!("{prefix}{own}"))
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| format!("{}={}", t.key().unwrap_or(""), t.value().unwrap_or("")))
        .collect::<Vec<_>>();
    let tenant: Value = app.get_json(&format!("/v1/tenants/{own}")).await;
    let role = tenant["db_user"].as_str().unwrap().to_string();
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE drover_password_auth NOLOGIN; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             GRANT drover_password_auth TO \"{role}\""
        ))
        .await
        .unwrap();
    let resolved: Value = app.get_json(&format!("/v1/resolve/{own}")).await;
    let logged_in = logs_in(resolved["dsn"].as_str().unwrap_or_default()).await;
    let repointed = app
        .patch_tenant(
            &patched,
            &json!({"db_secret_ref": format!("aws-sm:{prefix}precious#password")}),
        )
        .await
        .status();
    let removed = app.delete_tenant_and_database(&own).await.status();
    let kept = app.delete_tenant_and_database(&patched).await.status();
    let own_after = sm
        .describe_secret()
        .secret_id(format!("{prefix}{own}"))
        .send()
        .await
        .unwrap();
    let precious_after = sm
        .describe_secret()
        .secret_id(format!("{prefix}precious"))
        .send()
        .await
        .unwrap();
    let patched_own = sm
        .describe_secret()
        .secret_id(format!("{prefix}{patched}"))
        .send()
        .await
        .unwrap();

    for (status, text) in &created {
        assert_eq!(*status, StatusCode::CREATED, "{text}");
    }
    assert_eq!(
        fields["password"].as_str().map(str::len),
        Some(43),
        "{fields}"
    );
    assert_eq!(fields.as_object().map(|o| o.len()), Some(1), "{fields}");
    assert!(
        tags.contains(&"drover:created=true".to_string()),
        "{tags:?}"
    );
    assert!(logged_in, "the password in AWS is the role's");
    assert_eq!(repointed, StatusCode::OK);
    assert_eq!((removed, kept), (StatusCode::OK, StatusCode::OK));
    assert!(
        own_after.deleted_date().is_some(),
        "drover's own secret is scheduled for deletion"
    );
    assert!(
        precious_after.deleted_date().is_none(),
        "a secret drover did not write is kept"
    );
    // The secret drover wrote for the repointed tenant is no longer its reference: kept too.
    assert!(patched_own.deleted_date().is_none());
}

#[tokio::test]
async fn with_moto_stopped_a_cached_aws_secret_is_served_stale_and_the_stale_metric_rises() {
    let Some(mut moto) = Moto::private().await else {
        return;
    };
    let prefix = Moto::prefix("stale");
    let password = "stale-but-good";
    let db = password_tenant_db("tawsst", password).await;
    moto.client()
        .await
        .create_secret()
        .name(format!("{prefix}acme"))
        .secret_string(json!({"password": password}).to_string())
        .send()
        .await
        .expect("plant the secret");
    let (app, _) = daemon(
        &moto,
        &[
            ("DROVER_SECRET_TTL", "300ms"),
            ("DROVER_SECRET_STALE_FOR", "60s"),
            ("DROVER_SECRET_NEGATIVE_TTL", "100ms"),
            ("DROVER_AWS_SM_TIMEOUT", "2s"),
        ],
    )
    .await;
    let slug = slug("aws-stale");
    let reference = format!("aws-sm:{prefix}acme#password");
    app.create_tenant(&tenant(&slug, &db, &reference)).await;
    let stale_sample = "drover_secret_cache_total{result=\"stale\"}";

    let first = app.resolve(&slug).await.status();
    let before = app.metric(stale_sample).await;
    moto.stop();
    let (mut statuses, mut last, mut served_stale) = (Vec::new(), Value::Null, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !served_stale && std::time::Instant::now() < deadline {
        let resp = app.resolve(&slug).await;
        statuses.push(resp.status());
        last = resp.json().await.unwrap_or(Value::Null);
        served_stale = app.metric(stale_sample).await > before;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(first, StatusCode::OK);
    assert!(served_stale, "never served stale: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "200 while served stale: {statuses:?}"
    );
    assert!(
        logs_in(last["dsn"].as_str().unwrap_or_default()).await,
        "the stale value still logs in"
    );
}

#[tokio::test]
async fn fetching_45_aws_secrets_in_batches_answers_each_reference_and_the_missing_one_alone() {
    let Some(moto) = Moto::shared().await else {
        return;
    };
    let prefix = Moto::prefix("batch");
    let sm = moto.client().await;
    let mut references = Vec::new();
    for i in 0..45 {
        if i != 17 {
            sm.create_secret()
                .name(format!("{prefix}t{i}"))
                .secret_string(
                    json!({"password": format!("pw-{i}"), "user": format!("u{i}")}).to_string(),
                )
                .send()
                .await
                .expect("plant a secret");
        }
        references.push(format!("aws-sm:{prefix}t{i}#password"));
    }
    // Two keys of one secret, and a field the secret lacks.
    references.push(format!("aws-sm:{prefix}t3#user"));
    references.push(format!("aws-sm:{prefix}t4#nothing"));
    let references: Vec<SecretRef> = references.iter().map(|r| r.parse().unwrap()).collect();
    let endpoint = moto.endpoint.clone();
    let backend =
        AwsSmBackend::from_loader(AwsSmSettings::default(), move || sdk_loader(&endpoint));

    let answers = backend.fetch_many(&references).await;
    let single = backend.fetch(&references[5]).await.expect("one fetch");

    assert_eq!(answers.len(), references.len());
    for (i, answer) in answers.iter().enumerate().take(45) {
        match answer {
            Ok(f) if i != 17 => {
                assert_eq!(f.value.expose_secret(), format!("pw-{i}"));
                assert!(f.version.is_some(), "{i}: the version id comes along");
            }
            Err(SecretError::NotFound { reference, .. }) if i == 17 => {
                assert_eq!(reference, &references[17].to_string());
            }
            Ok(_) => panic!("{i}: answered although it does not exist"),
            Err(e) => panic!("{i}: {e}"),
        }
    }
    assert_eq!(answers[45].as_ref().unwrap().value.expose_secret(), "u3");
    assert!(
        matches!(&answers[46], Err(SecretError::NotFound { why, .. }) if why.contains("no field nothing")),
        "{:?}",
        answers[46].as_ref().err()
    );
    assert_eq!(single.value.expose_secret(), "pw-5");
    assert_eq!(single.version, answers[5].as_ref().unwrap().version);
}

#[tokio::test]
async fn a_key_write_merges_into_a_json_secret_and_a_secret_scheduled_for_deletion_is_restored_on_write(
) {
    let Some(moto) = Moto::shared().await else {
        return;
    };
    let prefix = Moto::prefix("merge");
    let sm = moto.client().await;
    sm.create_secret()
        .name(format!("{prefix}shared"))
        .secret_string(json!({"user": "app"}).to_string())
        .send()
        .await
        .expect("plant the secret");
    let endpoint = moto.endpoint.clone();
    let backend =
        AwsSmBackend::from_loader(AwsSmSettings::default(), move || sdk_loader(&endpoint));
    let r = |s: String| -> SecretRef { s.parse().unwrap() };
    let merged_ref = r(format!("aws-sm:{prefix}shared#password"));
    let fresh_ref = r(format!("aws-sm:{prefix}fresh#password"));
    let value = |s: &str| secrecy::SecretString::from(s.to_string());
    let fields = |name: String| {
        let sm = sm.clone();
        async move {
            let out = sm.get_secret_value().secret_id(name).send().await.unwrap();
            serde_json::from_str::<Value>(out.secret_string().unwrap()).unwrap()
        }
    };

    backend.write(&merged_ref, &value("first")).await.unwrap();
    let after_write = fields(format!("{prefix}shared")).await;
    backend.remove(&merged_ref).await.unwrap();
    let after_remove = sm
        .describe_secret()
        .secret_id(format!("{prefix}shared"))
        .send()
        .await
        .unwrap();
    let left = fields(format!("{prefix}shared")).await;
    backend.write(&fresh_ref, &value("one")).await.unwrap();
    backend.remove(&fresh_ref).await.unwrap();
    let scheduled = sm
        .describe_secret()
        .secret_id(format!("{prefix}fresh"))
        .send()
        .await
        .unwrap()
        .deleted_date()
        .is_some();
    let read_while_scheduled = backend.read(&fresh_ref).await.map(|_| ());
    backend.write(&fresh_ref, &value("two")).await.unwrap();
    let restored = backend.read(&fresh_ref).await.unwrap();

    assert_eq!(after_write, json!({"user": "app", "password": "first"}));
    assert!(after_remove.deleted_date().is_none(), "other fields remain");
    assert_eq!(left, json!({"user": "app"}));
    assert!(
        scheduled,
        "a secret left with no field is scheduled for deletion"
    );
    assert!(
        matches!(read_while_scheduled, Err(SecretError::NotFound { .. })),
        "{read_while_scheduled:?}"
    );
    assert_eq!(restored.expose_secret(), "two");
}

/// Pins a rotation in AWS failing tenants: drover's connection refused with the old
/// password (28P01) must fetch the secret again past its cache (PutSecretValue made a new
/// AWSCURRENT version) and retry, so no tenant of the running wave fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_rotated_in_aws_and_postgres_in_the_middle_of_a_wave_fail_no_tenant() {
    const TENANTS: usize = 16;
    let Some(moto) = Moto::shared().await else {
        return;
    };
    let prefix = Moto::prefix("rotate");
    let sm = moto.client().await;
    let migrations = MigrationsDir::owned(&counted_migrations(0.15));
    let (app, _) = daemon(
        moto,
        &[
            ("DROVER_MIGRATIONS_DIR", migrations.path()),
            ("DROVER_RETRY_BACKOFF", "100ms"),
            // Long enough that every tenant after the rotation starts from the old value.
            ("DROVER_SECRET_TTL", "10m"),
        ],
    )
    .await;
    let mut roles = Vec::new();
    for i in 0..TENANTS {
        let old = format!("old-{i}");
        let role = password_tenant_db("rotaws", &old).await;
        let name = format!("{prefix}rot-{i}");
        sm.create_secret()
            .name(&name)
            .secret_string(json!({"password": old}).to_string())
            .send()
            .await
            .expect("plant the secret");
        let slug = slug("aws-rot");
        let created = app
            .create_tenant(&tenant(&slug, &role, &format!("aws-sm:{name}#password")))
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        roles.push((name, role));
    }

    let id = app
        .start_wave(json!({"max_concurrency": 2, "batch_size": TENANTS}))
        .await;
    let before_rotation = crate::rotation::midpoint(&app, &id, TENANTS).await;
    for (i, (name, role)) in roles.iter().enumerate() {
        let new = format!("new-{i}");
        sm.put_secret_value()
            .secret_id(name)
            .secret_string(json!({"password": new}).to_string())
            .send()
            .await
            .expect("rotate the secret");
        set_role_password(role, &new).await;
    }
    crate::rotation::no_tenant_failed(&app, &id, TENANTS, before_rotation).await;
}
