//! Trials (README.md#tenant-lifecycle): the leader warns before a trial ends, suspends it
//! when it has ended (resolution answers 423 `trial_expired`), and a PATCH converts it.

use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

async fn json_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn in_secs(secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_trial_is_suspended_and_resolves_423_until_the_trial_is_converted() {
    let secrets = SecretsDir::new();
    secrets.put("tenants/trial", "pw");
    let app = TestApp::builder()
        .env("DROVER_SECRETS_DIR", secrets.path())
        .spawn()
        .await;
    let mut body = tenant_body("trial");
    body["trial_ends_at"] = json!(in_secs(2));
    let (created, tenant) = json_of(app.create_tenant(&body).await).await;
    assert_eq!(created, StatusCode::CREATED, "{tenant}");
    let (before, _) = json_of(app.resolve("trial").await).await;

    let expired = wait_until(Duration::from_secs(30), || async {
        let (status, body) = json_of(app.resolve("trial").await).await;
        status == StatusCode::LOCKED && body["error"]["suspended_reason"] == "trial_expired"
    })
    .await;
    let suspended: Value = app.get_json("/v1/tenants/trial").await;
    let kinds_expired = app.event_types("trial").await;
    let (converted, after) = json_of(
        app.patch_tenant("trial", &json!({"trial_ends_at": null}))
            .await,
    )
    .await;
    let resolves_again = wait_until(Duration::from_secs(10), || async {
        app.resolve("trial").await.status() == StatusCode::OK
    })
    .await;

    assert_eq!(before, StatusCode::OK);
    assert!(expired, "the trial was not suspended within 30 s");
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["suspended_reason"], "trial_expired");
    assert_eq!(
        kinds_expired[..2],
        ["trial_expired", "suspended"],
        "{kinds_expired:?}"
    );
    assert_eq!(converted, StatusCode::OK, "{after}");
    assert_eq!(after["status"], "active");
    assert!(after["trial_ends_at"].is_null() && after["suspended_reason"].is_null());
    assert_eq!(app.event_types("trial").await[0], "resumed");
    assert!(resolves_again, "the converted tenant does not resolve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_ending_soon_is_announced_once_and_counted_in_the_fleet_view() {
    let app = spawn_app().await;
    let with_trial = |slug: &str, secs: i64| {
        let mut b = tenant_body(slug);
        b["trial_ends_at"] = json!(in_secs(secs));
        b
    };
    app.create_tenant(&with_trial("soon", 86_400)).await;
    app.create_tenant(&with_trial("later", 10 * 86_400)).await;
    app.create_tenant(&tenant_body("paying")).await;
    let warned = |slug: &'static str| {
        let app = &app;
        async move {
            let kinds = app.event_types(slug).await;
            kinds.iter().filter(|k| *k == "trial_ending").count()
        }
    };
    let first = wait_until(Duration::from_secs(30), || async {
        warned("soon").await == 1
    })
    .await;
    // A tenant declared through apply, warned by a later sweep: by then "soon" has been
    // swept again and must not be warned twice.
    let definition = format!(
        "apiVersion: drover.dev/v1\nkind: Tenant\nmetadata: {{name: declared, displayName: d}}\n\
         spec: {{database: {{host: db1, name: t_declared, user: u, secretRef: 'file:tenants/declared'}}, \
         status: active, trialEndsAt: '{}'}}\n",
        in_secs(2 * 86_400)
    );
    let put = app
        .req(Method::PUT, "/v1/tenants/declared")
        .header("content-type", "application/yaml")
        .body(definition)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let second = wait_until(Duration::from_secs(30), || async {
        warned("declared").await == 1
    })
    .await;
    let fleet: Value = app.get_json("/v1/fleet").await;
    let feed: Value = app.get_json("/v1/events?type=tenant.trial_ending").await;

    assert!(first && second, "no trial_ending warning within 30 s");
    assert_eq!(warned("soon").await, 1);
    assert_eq!(warned("later").await, 0);
    assert_eq!(warned("paying").await, 0);
    assert_eq!(fleet["trials_ending_this_week"], 2, "{fleet}");
    assert_eq!(feed["items"].as_array().unwrap().len(), 2, "{feed}");
    let soon: Value = app.get_json("/v1/tenants/soon").await;
    assert_eq!(soon["status"], "active");
}
