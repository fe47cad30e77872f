//! Which tenants a wave covers, by status: suspended ones are migrated (their schema must
//! be current when they come back), provisioning, deleting and deleted ones are not, also
//! when the status changed after the plan froze. Every other wave test registers active
//! tenants only.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::support::{migrated_events, register_on, schema_version, targets};
use crate::helpers::{
    connect, counted_migrations_dir, db_url, history, server_host_port, wait_until, SecretsDir,
    TestApp, WAVE_DONE,
};

// Pins, each tried by hand where noted: a plan that takes provisioning tenants (tried:
// the live-tenant condition with `provisioning` added; the plan differs) or deleted ones; a worker that migrates a tenant deleted after the plan
// froze (tried: `prepare` not skipping a deleted tenant; its target then
// succeeds instead of being skipped) or one being deleted; a worker that refuses suspended tenants
// (resolution refuses them, migration must not). The statuses change while the wave is
// paused after its canary, so the plan already holds those tenants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_migrates_suspended_tenants_and_skips_provisioning_deleting_and_deleted_ones() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = TestApp::builder()
        .env("DROVER_MIGRATIONS_DIR", migrations.path())
        .env("DROVER_SECRETS_DIR", secrets.path())
        .env("DROVER_RETRY_BACKOFF", "100ms")
        .env("DROVER_PROVISION_URL", &db_url("postgres"))
        .spawn()
        .await;
    let (host, _) = server_host_port();
    let reg = |slug: &'static str, patch: Value| register_on(&app, &secrets, slug, &host, patch);
    let canary = reg("cov-canary", json!({"canary": true})).await;
    let active = reg("cov-active", json!({})).await;
    let suspended = reg("cov-suspended", json!({})).await;
    let provisioning = reg("cov-provisioning", json!({"status": "provisioning"})).await;
    let deleted = reg("cov-deleted", json!({})).await;
    let late_suspended = reg("cov-late-suspended", json!({})).await;
    let late_deleted = reg("cov-late-deleted", json!({})).await;
    // A tenant drover provisioned, so that deleting it with its database can stop half-way.
    let deleting = format!("cov-deleting-{}", std::process::id());
    let made = app
        .create_tenant_waiting(&json!({"slug": deleting, "provision": true}))
        .await;
    assert_eq!(
        made.status(),
        StatusCode::CREATED,
        "{}",
        made.text().await.unwrap()
    );
    suspend(&app, "cov-suspended").await;
    assert_eq!(
        app.delete_tenant("cov-deleted").await.status(),
        StatusCode::OK
    );

    let id = app
        .start_wave(json!({"soak_seconds": 3600, "batch_size": 100}))
        .await;
    app.wait_for_wave_state(&id, &["soaking"]).await;
    app.wave_action(&id, "pause", "alice").await;
    let planned: BTreeSet<String> = targets(&app, &id).await.into_keys().collect();
    suspend(&app, "cov-late-suspended").await;
    assert_eq!(
        app.delete_tenant("cov-late-deleted").await.status(),
        StatusCode::OK
    );
    let stuck = stop_half_way_through_deleting(&app, &deleting).await;
    app.wave_action(&id, "promote", "alice").await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    let outcome: BTreeMap<String, (Value, Value)> = targets(&app, &id)
        .await
        .into_iter()
        .map(|(slug, t)| (slug, (t["state"].clone(), t["error"].clone())))
        .collect();

    let expected_plan: BTreeSet<String> = [
        "cov-canary",
        "cov-active",
        "cov-suspended",
        "cov-late-suspended",
        "cov-late-deleted",
        deleting.as_str(),
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(planned, expected_plan, "the frozen plan");
    assert_eq!(stuck, "deleting");
    assert_eq!(wave["state"], "completed", "{wave:#}");
    for t in [&canary, &active, &suspended, &late_suspended] {
        assert_eq!(
            outcome[&t.slug].0, "succeeded",
            "{}: {:?}",
            t.slug, outcome[&t.slug]
        );
        assert_eq!(history(&t.url).await, vec![1, 2, 3], "{}", t.slug);
        assert_eq!(schema_version(&app, &t.slug).await, 3, "{}", t.slug);
        assert_eq!(migrated_events(&app, &t.slug).await.len(), 1, "{}", t.slug);
    }
    for slug in ["cov-suspended", "cov-late-suspended"] {
        let t: Value = app.get_json(&format!("/v1/tenants/{slug}")).await;
        assert_eq!(t["status"], "suspended", "{slug} stays suspended");
    }
    let (state, error) = &outcome["cov-late-deleted"];
    assert_eq!(state, "skipped");
    assert!(error.as_str().unwrap().contains("deleted"), "{error}");
    let (state, error) = &outcome[&deleting];
    assert_eq!(state, "skipped");
    assert!(error.as_str().unwrap().contains("deleting"), "{error}");
    for t in [&provisioning, &deleted, &late_deleted] {
        assert!(history(&t.url).await.is_empty(), "{} was migrated", t.slug);
    }
    assert!(migrated_events(&app, "cov-provisioning").await.is_empty());
    assert_eq!(wave["counts"]["skipped"], 2);
    assert_eq!(wave["counts"]["succeeded"], 4);

    finish_deleting(&app, &deleting).await;
}

async fn suspend(app: &TestApp, slug: &str) {
    let resp = app
        .act(slug, "suspend", Some(json!({"reason": "unpaid"})))
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "suspend {slug}");
}

/// The role name drover gave a provisioned tenant.
async fn db_user(app: &TestApp, slug: &str) -> String {
    let t: Value = app.get_json(&format!("/v1/tenants/{slug}")).await;
    t["db_user"].as_str().unwrap().to_string()
}

/// `DELETE …?drop_database=true` that fails after the database is gone but before the role
/// is (a privilege on another database keeps the role): the tenant stays `deleting`.
/// Returns its status afterwards.
async fn stop_half_way_through_deleting(app: &TestApp, slug: &str) -> String {
    let role = db_user(app, slug).await;
    let control = app.database_url.rsplit('/').next().unwrap().to_string();
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!(
            "GRANT CONNECT ON DATABASE \"{control}\" TO \"{role}\""
        ))
        .await
        .unwrap();
    let refused = app.delete_tenant_and_database(slug).await;
    assert!(
        !refused.status().is_success(),
        "the role was dropped anyway"
    );
    let t: Value = app.get_json(&format!("/v1/tenants/{slug}")).await;
    t["status"].as_str().unwrap_or_default().to_string()
}

/// Lets the half-done delete finish, so the test leaves no role behind.
async fn finish_deleting(app: &TestApp, slug: &str) {
    let role = db_user(app, slug).await;
    let control = app.database_url.rsplit('/').next().unwrap().to_string();
    connect(&db_url("postgres"))
        .await
        .batch_execute(&format!(
            "REVOKE CONNECT ON DATABASE \"{control}\" FROM \"{role}\""
        ))
        .await
        .unwrap();
    let done = wait_until(std::time::Duration::from_secs(10), || async {
        app.delete_tenant_and_database(slug)
            .await
            .status()
            .is_success()
    })
    .await;
    assert!(done, "the retried delete of {slug} failed");
}
