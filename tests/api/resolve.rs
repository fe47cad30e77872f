//! `GET /v1/resolve/{slug}`: status policy, real connections, cache invalidation, no leaks.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    fresh_control_database, password_tenant_db, server_host_port, tenant_body, wait_until, Daemon,
    SecretsDir, TestApp, ADMIN_TOKEN,
};

const RESOLVER_TOKEN: &str = "test-resolver-token-0123456789abcdef";
const NASTY_PASSWORD: &str = "p@ss:w/o?r#d% 'q' x&y=z";

/// `GET /v1/resolve/{slug}` with the resolver token.
async fn resolve(app: &TestApp, slug: &str) -> reqwest::Response {
    app.with_token(RESOLVER_TOKEN).resolve(slug).await
}

/// A daemon with a secrets dir and a resolver token, and one active tenant `acme`
/// pointing at a real database whose role needs `NASTY_PASSWORD`.
async fn app_with_real_tenant(extra: &[(&str, &str)]) -> (TestApp, SecretsDir, String) {
    let secrets = SecretsDir::new();
    secrets.put("tenants/acme", NASTY_PASSWORD);
    let mut settings = vec![
        ("DROVER_SECRETS_DIR", secrets.path()),
        ("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN),
    ];
    settings.extend_from_slice(extra);
    let app = TestApp::builder().envs(&settings).spawn().await;
    let db = password_tenant_db("tacme", NASTY_PASSWORD).await;
    let (host, port) = server_host_port();
    let mut body = tenant_body("acme");
    body["db_host"] = json!(host);
    body["db_port"] = json!(port);
    body["db_name"] = json!(db);
    body["db_user"] = json!(db);
    assert_eq!(app.create_tenant(&body).await.status(), StatusCode::CREATED);
    (app, secrets, db)
}

/// Resolves `slug` every 50 ms until the secret cache serves its password stale (the stale
/// counter moves) or `within` passes: whether it did, every status on the way, and the
/// last answer's body.
async fn until_served_stale(
    app: &TestApp,
    slug: &str,
    within: Duration,
) -> (bool, Vec<StatusCode>, Value) {
    let stale = &app.state.resolver.stats.secret_stale;
    let (before, started) = (stale.get(), std::time::Instant::now());
    let mut statuses = Vec::new();
    loop {
        let resp = resolve(app, slug).await;
        statuses.push(resp.status());
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if stale.get() > before || started.elapsed() > within {
            return (stale.get() > before, statuses, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn resolved_dsn_connects_to_a_database_whose_password_is_full_of_special_characters() {
    let (app, _secrets, db) = app_with_real_tenant(&[]).await;

    let resp = resolve(&app, "acme").await;

    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["dbname"], db);
    let dsn = body["dsn"].as_str().unwrap();
    let (client, conn) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .expect("the DSN connects");
    tokio::spawn(conn);
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, db);
    let wrong = dsn.replace("p%40ss", "nope");
    assert!(
        tokio_postgres::connect(&wrong, tokio_postgres::NoTls)
            .await
            .is_err(),
        "the role really needs its password"
    );
}

#[tokio::test]
async fn status_policy_answers_200_423_409_and_404() {
    let (app, secrets, _db) = app_with_real_tenant(&[]).await;
    for slug in ["sleepy", "fresh", "going", "gone"] {
        secrets.put(&format!("tenants/{slug}"), "pw");
        app.create_tenant(&tenant_body(slug)).await;
    }
    app.act(
        "sleepy",
        "suspend",
        Some(json!({"reason": "unpaid invoice"})),
    )
    .await;
    app.patch_tenant("fresh", &json!({"status": "active"}))
        .await;
    app.control_db()
        .await
        .batch_execute(
            "UPDATE control_plane.tenants SET status = 'provisioning' WHERE slug = 'fresh'; \
                        UPDATE control_plane.tenants SET status = 'deleting' WHERE slug = 'going';",
        )
        .await
        .unwrap();
    app.delete_tenant("gone").await;

    let active = resolve(&app, "acme").await;
    let suspended = resolve(&app, "sleepy").await;
    let provisioning = resolve(&app, "fresh").await;
    let deleting = resolve(&app, "going").await;
    let deleted = resolve(&app, "gone").await;
    let unknown = resolve(&app, "nobody").await;
    let invalid = resolve(&app, "Not_A_Slug!").await;

    assert_eq!(active.status(), StatusCode::OK);
    assert_eq!(suspended.status(), StatusCode::LOCKED);
    assert_eq!(suspended.headers()["cache-control"], "no-store");
    let body: Value = suspended.json().await.unwrap();
    assert_eq!(body["error"]["suspended_reason"], "unpaid invoice");
    assert_eq!(provisioning.status(), StatusCode::CONFLICT);
    assert_eq!(deleting.status(), StatusCode::CONFLICT);
    assert_eq!(deleted.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(invalid.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn resolve_accepts_the_resolver_and_admin_tokens_and_the_resolver_token_nothing_else() {
    let (app, _secrets, _db) = app_with_real_tenant(&[]).await;
    let with_admin = app.resolve("acme").await;
    let without = app.get_without_token("/v1/resolve/acme").await;
    let resolver_on_admin_route = app.with_token(RESOLVER_TOKEN).get("/v1/tenants").await;

    assert_eq!(with_admin.status(), StatusCode::OK);
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
    // Authenticated, but the resolver role only resolves.
    assert_eq!(resolver_on_admin_route.status(), StatusCode::FORBIDDEN);
    let err: Value = resolver_on_admin_route.json().await.unwrap();
    assert_eq!(err["error"]["required_role"], "viewer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspend_through_one_replica_is_seen_by_another_within_two_seconds() {
    let secrets = SecretsDir::new();
    secrets.put("tenants/acme", "pw");
    let control = fresh_control_database().await;
    // A long TTL, so only the change notification can explain a fast update.
    let settings = [
        ("DROVER_SECRETS_DIR", secrets.path()),
        ("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN),
        ("DROVER_TENANT_CACHE_TTL", "10m"),
    ];
    let a = TestApp::builder()
        .control_db(&control)
        .envs(&settings)
        .spawn()
        .await;
    let b = TestApp::builder()
        .control_db(&control)
        .envs(&settings)
        .spawn()
        .await;
    a.create_tenant(&tenant_body("acme")).await;
    assert_eq!(
        resolve(&b, "acme").await.status(),
        StatusCode::OK,
        "B has acme cached as active"
    );

    a.act("acme", "suspend", Some(json!({"reason": "abuse"})))
        .await;

    let seen = wait_until(Duration::from_secs(2), || async {
        resolve(&b, "acme").await.status() == StatusCode::LOCKED
    })
    .await;
    assert!(seen, "replica B still resolves a suspended tenant");
}

#[tokio::test]
async fn missing_or_escaping_secret_is_503_with_retry_after_naming_the_ref_only() {
    let secrets = SecretsDir::new();
    std::fs::create_dir_all(secrets.0.join("tenants")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", secrets.0.join("tenants/escape")).unwrap();
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN),
        ])
        .spawn()
        .await;
    let mut missing = tenant_body("missing");
    missing["db_secret_ref"] = json!("file:tenants/missing");
    let mut escape = tenant_body("escape");
    escape["db_secret_ref"] = json!("file:tenants/escape");
    app.create_tenant(&missing).await;
    app.create_tenant(&escape).await;

    let m = resolve(&app, "missing").await;
    let e = resolve(&app, "escape").await;

    assert_eq!(m.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(m.headers().contains_key("retry-after"));
    assert_eq!(m.headers()["cache-control"], "no-store");
    let body: Value = m.json().await.unwrap();
    assert_eq!(body["error"]["code"], "secret_unavailable");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("file:tenants/missing"));
    assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = e.text().await.unwrap();
    assert!(text.contains("outside the secrets directory"), "{text}");
    assert!(!text.contains("root:"), "{text}");
}

#[tokio::test]
async fn a_rotated_file_secret_is_picked_up_after_the_ttl_and_a_vanished_one_is_served_stale_then_503(
) {
    let (app, secrets, _db) = app_with_real_tenant(&[
        ("DROVER_SECRET_TTL", "300ms"),
        ("DROVER_SECRET_STALE_FOR", "1500ms"),
        ("DROVER_SECRET_NEGATIVE_TTL", "100ms"),
    ])
    .await;
    let dsn = |v: Value| v["dsn"].as_str().unwrap().to_string();
    let first = dsn(resolve(&app, "acme").await.json().await.unwrap());

    secrets.put("tenants/acme", "rotated");
    let rotated = wait_until(Duration::from_secs(3), || async {
        let r = resolve(&app, "acme").await;
        r.status() == StatusCode::OK && dsn(r.json().await.unwrap()).contains(":rotated@")
    })
    .await;
    std::fs::remove_file(secrets.0.join("tenants/acme")).unwrap();
    let removed = std::time::Instant::now();
    // Not a guessed wait for the TTL: the cache's own stale counter says when the old
    // value is served because the file is gone.
    let (served_stale, statuses, _) =
        until_served_stale(&app, "acme", Duration::from_secs(3)).await;
    let gone = wait_until(Duration::from_secs(4), || async {
        resolve(&app, "acme").await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let gone_after = removed.elapsed();

    assert!(first.contains("p%40ss"));
    assert!(rotated, "new secret value never showed up");
    assert!(
        served_stale,
        "the vanished secret was never served stale: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "200 until and while served stale: {statuses:?}"
    );
    assert!(gone, "stale value served past its bound");
    // The value was loaded before the removal, so it may be served at most TTL + stale
    // bound + negative TTL (1.9 s) after it; 1.1 s more for a loaded machine.
    assert!(
        gone_after < Duration::from_secs(3),
        "503 only {gone_after:?} after the secret vanished (bound 1.9 s)"
    );
}

#[tokio::test]
async fn trace_logs_of_resolutions_contain_no_password_and_no_dsn() {
    let secrets = SecretsDir::new();
    secrets.put("tenants/acme", NASTY_PASSWORD);
    let control = fresh_control_database().await;
    let daemon = Daemon::start(
        &control,
        "trace",
        &[
            ("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN),
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_LOG", "trace"),
            ("DROVER_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let db = password_tenant_db("tleak", NASTY_PASSWORD).await;
    let (host, pg_port) = server_host_port();
    let mut body = tenant_body("acme");
    body["db_host"] = json!(host);
    body["db_port"] = json!(pg_port);
    body["db_name"] = json!(db);
    body["db_user"] = json!(db);
    let mut broken = tenant_body("broken");
    broken["db_secret_ref"] = json!("file:tenants/none");
    for b in [&body, &broken] {
        daemon.create_tenant(b).await;
    }
    let resolver = daemon.with_token(RESOLVER_TOKEN);

    let ok = resolver.resolve("acme").await;
    let dsn = ok.json::<Value>().await.unwrap()["dsn"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = resolver.resolve("broken").await;
    let (_, logs) = daemon.terminate().await;

    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        logs.contains("/v1/resolve/acme"),
        "the access log shows the slug"
    );
    assert!(logs.lines().count() > 20, "trace logging was on");
    let encoded = drover::resolve::dsn::encode(NASTY_PASSWORD);
    for needle in [
        NASTY_PASSWORD,
        encoded.as_str(),
        dsn.as_str(),
        "p@ss",
        RESOLVER_TOKEN,
        ADMIN_TOKEN,
    ] {
        assert!(!logs.contains(needle), "logs leak {needle:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_notification_connection_was_killed_reconnects_and_sees_changes() {
    let secrets = SecretsDir::new();
    secrets.put("tenants/acme", "pw");
    let settings = [
        ("DROVER_SECRETS_DIR", secrets.path()),
        ("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN),
        ("DROVER_TENANT_CACHE_TTL", "10m"),
    ];
    let app = TestApp::builder().envs(&settings).spawn().await;
    app.create_tenant(&tenant_body("acme")).await;
    assert_eq!(resolve(&app, "acme").await.status(), StatusCode::OK);
    let db = app.control_db().await;
    // The listener's backend, identified by pid so a new connection is told from the old.
    let listeners = || async {
        db.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN drover_tenant_changed'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i32>(0))
        .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(5), || async {
            listeners().await.len() == 1
        })
        .await
    );
    let old = listeners().await[0];

    db.execute("SELECT pg_terminate_backend($1)", &[&old])
        .await
        .unwrap();
    let reconnected = wait_until(Duration::from_secs(5), || async {
        listeners().await.iter().any(|pid| *pid != old)
    })
    .await;
    app.act("acme", "suspend", Some(json!({"reason": "abuse"})))
        .await;

    assert!(reconnected, "the listener did not come back");
    let seen = wait_until(Duration::from_secs(3), || async {
        resolve(&app, "acme").await.status() == StatusCode::LOCKED
    })
    .await;
    assert!(seen);
}

#[tokio::test]
async fn vault_secrets_resolve_pick_up_new_versions_and_survive_a_sealed_vault_within_the_bound() {
    let Some(bao) = crate::helpers::OpenBao::start().await else {
        return;
    };
    bao.put("tenants/acme", json!({"password": "v1-secret"}))
        .await;
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN),
            ("DROVER_VAULT_ADDR", &bao.addr),
            ("DROVER_VAULT_TOKEN", &bao.root_token),
            ("DROVER_SECRET_TTL", "300ms"),
            ("DROVER_SECRET_STALE_FOR", "2s"),
            ("DROVER_SECRET_NEGATIVE_TTL", "100ms"),
        ])
        .spawn()
        .await;
    let mut body = tenant_body("acme");
    body["db_secret_ref"] = json!("vault:secret/tenants/acme#password");
    app.create_tenant(&body).await;
    let dsn_of = |v: Value| v["dsn"].as_str().unwrap_or_default().to_string();

    let first = dsn_of(resolve(&app, "acme").await.json().await.unwrap());
    bao.put("tenants/acme", json!({"password": "v2-secret"}))
        .await;
    let rotated = wait_until(Duration::from_secs(3), || async {
        dsn_of(resolve(&app, "acme").await.json().await.unwrap()).contains(":v2-secret@")
    })
    .await;
    bao.seal().await;
    let sealed = std::time::Instant::now();
    let (served_stale, statuses, stale_body) =
        until_served_stale(&app, "acme", Duration::from_secs(3)).await;
    let unavailable = wait_until(Duration::from_secs(5), || async {
        resolve(&app, "acme").await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let unavailable_after = sealed.elapsed();

    assert!(first.contains(":v1-secret@"), "{first}");
    assert!(rotated, "the new version never showed up");
    assert!(
        served_stale,
        "never served stale while sealed: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "200 until and while served stale: {statuses:?}"
    );
    assert!(dsn_of(stale_body).contains(":v2-secret@"));
    assert!(unavailable, "stale value served past its bound");
    // TTL + stale bound + negative TTL is 2.4 s after the last load (before the seal);
    // 1.1 s more for a loaded machine.
    assert!(
        unavailable_after < Duration::from_millis(3_500),
        "503 only {unavailable_after:?} after the seal (bound 2.4 s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_resolutions_of_a_cold_slug_read_the_secret_once() {
    let (app, _secrets, _db) = app_with_real_tenant(&[]).await;
    let resolver = app.state.resolver.clone();

    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let r = resolver.clone();
            tokio::spawn(async move {
                matches!(
                    r.resolve("acme").await,
                    Ok(drover::resolve::Resolution::Ok(_))
                )
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap() as usize;
    }

    assert_eq!(ok, 1000);
    assert_eq!(resolver.stats.secret_misses.get(), 1, "one backend read");
    assert_eq!(resolver.stats.secret_hits.get(), 999);
}
