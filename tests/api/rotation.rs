//! Rotation without downtime, against a real OpenBao (KV v2 versions), real PostgreSQL
//! roles that log in with SCRAM passwords and the real daemon: a refused password (28P01)
//! is refetched and retried, `?fresh=true` bypasses the cache at most once per interval,
//! a new KV version replaces the cached value at the next refresh, and a starting replica
//! fetches every active tenant's secret ahead in batches.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    counted_migrations, password_tenant_db, server_host_port, set_role_password, tenant_body,
    wait_until, ApiClient, MigrationsDir, OpenBao, SecretsDir, TestApp,
};

/// A tenant on database (and role) `db`, its password behind vault path `tenants/{slug}`.
fn vault_tenant(slug: &str, db: &str) -> Value {
    let (host, port) = server_host_port();
    let mut body = tenant_body(slug);
    body["db_host"] = json!(host);
    body["db_port"] = json!(port);
    body["db_name"] = json!(db);
    body["db_user"] = json!(db);
    body["db_secret_ref"] = json!(format!("vault:secret/tenants/{slug}#password"));
    body
}

fn vault_env(bao: &OpenBao) -> Vec<(&'static str, String)> {
    vec![
        ("DROVER_VAULT_ADDR", bao.addr.clone()),
        ("DROVER_VAULT_TOKEN", bao.root_token.clone()),
    ]
}

async fn password_in(app: &TestApp, slug: &str, fresh: bool) -> String {
    let path = if fresh {
        format!("/v1/resolve/{slug}?fresh=true")
    } else {
        format!("/v1/resolve/{slug}")
    };
    let resp = app.get(&path).await;
    assert_eq!(resp.status(), StatusCode::OK, "resolve {slug}");
    let body: Value = resp.json().await.unwrap();
    let dsn = body["dsn"].as_str().unwrap().to_string();
    // postgresql://user:PASSWORD@host…
    let after_user = dsn.split_once("://").unwrap().1.split_once(':').unwrap().1;
    after_user.rsplit_once('@').unwrap().0.to_string()
}

const VAULT_OK: &str = "drover_secret_fetches_total{outcome=\"ok\",scheme=\"vault\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_rotated_in_openbao_and_postgres_in_the_middle_of_a_wave_fail_no_tenant() {
    const TENANTS: usize = 20;
    let Some(bao) = OpenBao::start().await else {
        return;
    };
    let migrations = MigrationsDir::owned(&counted_migrations(0.15));
    let mut env = vault_env(&bao);
    env.extend([
        ("DROVER_MIGRATIONS_DIR", migrations.path().to_string()),
        ("DROVER_RETRY_BACKOFF", "100ms".into()),
        // Long enough that every tenant after the rotation starts from the old value.
        ("DROVER_SECRET_TTL", "10m".into()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::builder().envs(&env).spawn().await;
    let mut roles = Vec::new();
    for i in 0..TENANTS {
        let slug = format!("rot-{i:02}");
        let role = password_tenant_db("rot", &format!("old-{i}")).await;
        bao.put(
            &format!("tenants/{slug}"),
            json!({"password": format!("old-{i}")}),
        )
        .await;
        let created = app.create_tenant(&vault_tenant(&slug, &role)).await;
        assert_eq!(created.status(), StatusCode::CREATED);
        roles.push((slug, role));
    }

    let id = app
        .start_wave(json!({"max_concurrency": 2, "batch_size": TENANTS}))
        .await;
    let before_rotation = midpoint(&app, &id, TENANTS).await;
    for (i, (slug, role)) in roles.iter().enumerate() {
        let new = format!("new-{i}");
        bao.put(&format!("tenants/{slug}"), json!({"password": new}))
            .await;
        set_role_password(role, &new).await;
    }
    no_tenant_failed(&app, &id, TENANTS, before_rotation).await;
}

/// Waits until about half of the wave's `tenants` succeeded; how many had, for
/// [`no_tenant_failed`].
pub(crate) async fn midpoint(app: &ApiClient, id: &str, tenants: usize) -> Option<i64> {
    let reached = wait_until(Duration::from_secs(60), || async {
        app.get_wave(id).await["counts"]["succeeded"].as_i64() >= Some(tenants as i64 / 2 - 2)
    })
    .await;
    assert!(reached, "the wave never reached its midpoint");
    app.get_wave(id).await["counts"]["succeeded"].as_i64()
}

/// After a rotation at the midpoint (`before_rotation` tenants done): the wave completes with
/// every tenant, and at least one refused connection was retried with the refetched secret.
pub(crate) async fn no_tenant_failed(
    app: &ApiClient,
    id: &str,
    tenants: usize,
    before_rotation: Option<i64>,
) {
    let wave = app.wait_for_wave_state(id, &["completed", "halted"]).await;
    let retried = app
        .metric("drover_secret_auth_refetches_total{outcome=\"retried\"}")
        .await;

    assert!(
        before_rotation < Some(tenants as i64 - 2),
        "the rotation came too late to matter: {before_rotation:?} tenants had finished"
    );
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["counts"]["succeeded"], tenants, "{wave:#}");
    assert!(
        retried > 0.0,
        "no connection was retried after a refused password"
    );
}

/// Pins a malformed `fresh` being read as false (or as true) instead of refused: a client
/// that misspells it must learn so, and the backend must not be asked.
#[tokio::test]
async fn a_malformed_fresh_parameter_is_a_422_that_reaches_no_backend() {
    let secrets = SecretsDir::new();
    secrets.put("tenants/acme", "pw-1");
    let app = TestApp::builder()
        .env("DROVER_SECRETS_DIR", secrets.path())
        .spawn()
        .await;
    let mut body = tenant_body("acme");
    body["db_secret_ref"] = json!("file:tenants/acme");
    assert_eq!(app.create_tenant(&body).await.status(), StatusCode::CREATED);
    let before = app.metrics_text().await;

    for bad in ["maybe", "1", "TRUE", "true&fresh=false", ""] {
        let resp = app.get(&format!("/v1/resolve/acme?fresh={bad}")).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "fresh={bad}: {text}"
        );
        assert!(!text.contains("pw-1"), "fresh={bad}: {text}");
    }
    let fetches = |m: &str| {
        m.lines()
            .filter(|l| l.starts_with("drover_secret_fetches_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!(fetches(&app.metrics_text().await), fetches(&before));
}

#[tokio::test]
async fn fresh_resolution_returns_a_rotated_password_at_once_and_a_second_one_inside_the_interval_does_not_reach_the_backend(
) {
    let Some(bao) = OpenBao::start().await else {
        return;
    };
    let mut env = vault_env(&bao);
    env.push(("DROVER_SECRET_TTL", "10m".into()));
    env.push(("DROVER_RESOLVE_FRESH_MIN_INTERVAL", "10m".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::builder().envs(&env).spawn().await;
    bao.put("tenants/acme", json!({"password": "v1-secret"}))
        .await;
    let mut body = tenant_body("acme");
    body["db_secret_ref"] = json!("vault:secret/tenants/acme#password");
    assert_eq!(app.create_tenant(&body).await.status(), StatusCode::CREATED);

    let first = password_in(&app, "acme", false).await;
    bao.put("tenants/acme", json!({"password": "v2-secret"}))
        .await;
    let plain = password_in(&app, "acme", false).await;
    let fresh = password_in(&app, "acme", true).await;
    let fetches_after_fresh = app.metric(VAULT_OK).await;
    bao.put("tenants/acme", json!({"password": "v3-secret"}))
        .await;
    let fresh_again = password_in(&app, "acme", true).await;
    let fetches_after_second = app.metric(VAULT_OK).await;
    let plain_after = password_in(&app, "acme", false).await;

    assert_eq!(first, "v1-secret");
    assert_eq!(
        plain, "v1-secret",
        "a plain resolution is served from the cache"
    );
    assert_eq!(fresh, "v2-secret", "fresh=true bypasses the cache");
    assert_eq!(
        fresh_again, "v2-secret",
        "inside the interval, the value the last fresh fetch cached"
    );
    assert_eq!(
        fetches_after_second, fetches_after_fresh,
        "the second fresh call inside the interval reached the backend"
    );
    assert_eq!(
        app.metric("drover_secret_fresh_total{result=\"limited\"}")
            .await,
        1.0
    );
    assert_eq!(
        plain_after, "v2-secret",
        "the fresh fetch replaced the cached value"
    );
}

#[tokio::test]
async fn a_new_kv_version_replaces_the_cached_value_at_the_next_refresh_and_counts_a_rotation() {
    let Some(bao) = OpenBao::start().await else {
        return;
    };
    let mut env = vault_env(&bao);
    env.push(("DROVER_SECRET_TTL", "300ms".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = TestApp::builder().envs(&env).spawn().await;
    bao.put("tenants/acme", json!({"password": "v1-secret"}))
        .await;
    let mut body = tenant_body("acme");
    body["db_secret_ref"] = json!("vault:secret/tenants/acme#password");
    assert_eq!(app.create_tenant(&body).await.status(), StatusCode::CREATED);
    let rotations = "drover_secret_rotations_total{scheme=\"vault\"}";

    let first = password_in(&app, "acme", false).await;
    // A refresh past the TTL that finds the same version only renews the value.
    let fetched = app.metric(VAULT_OK).await;
    let refreshed = wait_until(Duration::from_secs(5), || async {
        password_in(&app, "acme", false).await;
        app.metric(VAULT_OK).await > fetched
    })
    .await;
    let rotations_unchanged = app.metric(rotations).await;
    bao.put("tenants/acme", json!({"password": "v2-secret"}))
        .await;
    let replaced = wait_until(Duration::from_secs(5), || async {
        password_in(&app, "acme", false).await == "v2-secret"
    })
    .await;

    assert_eq!(first, "v1-secret");
    assert!(refreshed, "the value was never refreshed past its TTL");
    assert_eq!(
        rotations_unchanged, 0.0,
        "the same version counted as a rotation"
    );
    assert!(replaced, "the new version never replaced the cached value");
    assert_eq!(app.metric(rotations).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_replica_fetches_every_active_tenants_secret_ahead_in_batches_so_first_resolutions_hit(
) {
    const PER_SCHEME: usize = 20;
    let Some(bao) = OpenBao::start().await else {
        return;
    };
    let secrets = SecretsDir::new();
    let mut env = vault_env(&bao);
    env.push(("DROVER_SECRETS_DIR", secrets.path().to_string()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = TestApp::builder().envs(&env).spawn().await;
    let mut slugs = Vec::new();
    for i in 0..PER_SCHEME {
        let (v, f) = (format!("warm-v{i:02}"), format!("warm-f{i:02}"));
        bao.put(
            &format!("tenants/{v}"),
            json!({"password": format!("pw-{v}")}),
        )
        .await;
        secrets.put(&format!("tenants/{f}"), &format!("pw-{f}"));
        let mut body = tenant_body(&v);
        body["db_secret_ref"] = json!(format!("vault:secret/tenants/{v}#password"));
        assert_eq!(
            first.create_tenant(&body).await.status(),
            StatusCode::CREATED
        );
        assert_eq!(
            first.create_tenant(&tenant_body(&f)).await.status(),
            StatusCode::CREATED
        );
        slugs.extend([v, f]);
    }
    let mut suspended = tenant_body("warm-suspended");
    suspended["status"] = json!("suspended");
    secrets.put("tenants/warm-suspended", "pw");
    first.create_tenant(&suspended).await;

    // A replica starting on the same control DB: its cache is cold.
    let second = TestApp::builder()
        .control_db(&first.database_url)
        .envs(&env)
        .env("DROVER_INSTANCE_ID", "second")
        .spawn()
        .await;
    let warmed = wait_until(Duration::from_secs(10), || async {
        second
            .metric("drover_secret_warm_total{outcome=\"ok\"}")
            .await
            >= (2 * PER_SCHEME) as f64
    })
    .await;
    let hits = "drover_secret_cache_total{result=\"hit\"}";
    let misses = "drover_secret_cache_total{result=\"miss\"}";
    let (hits_before, misses_before) = (second.metric(hits).await, second.metric(misses).await);
    for slug in &slugs {
        assert!(!password_in(&second, slug, false).await.is_empty());
    }

    assert!(warmed, "the warm-up never finished");
    assert_eq!(
        second
            .metric("drover_secret_warm_total{outcome=\"ok\"}")
            .await,
        (2 * PER_SCHEME) as f64,
        "only the active tenants are fetched ahead"
    );
    assert_eq!(second.metric(hits).await - hits_before, slugs.len() as f64);
    assert_eq!(second.metric(misses).await, misses_before);
    for scheme in ["vault", "file"] {
        let fetches = second
            .metric(&format!(
                "drover_secret_fetches_total{{outcome=\"ok\",scheme=\"{scheme}\"}}"
            ))
            .await;
        let batches = second
            .metric(&format!(
                "drover_secret_fetch_batches_total{{scheme=\"{scheme}\"}}"
            ))
            .await;
        assert_eq!(fetches, PER_SCHEME as f64, "{scheme}: one fetch per tenant");
        assert_eq!(batches, 1.0, "{scheme}: every fetch in one batch");
    }
}
