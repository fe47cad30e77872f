//! "Changes without an actor": schedule update/delete, webhook delete and token
//! create/revoke left a log line at most. Each change is now an event in the feed with the
//! token that made it, filterable by family, and a webhook delivery in the same commit.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{set_body, tenant_body, SecretsDir, TestApp};

/// Every event of the feed whose type matches `pattern`, oldest first.
async fn events(app: &TestApp, pattern: &str) -> Vec<Value> {
    let page: Value = app
        .get_json(&format!("/v1/events?type={pattern}&limit=500"))
        .await;
    let mut items = page["items"].as_array().unwrap().clone();
    items.reverse();
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_an_event_with_the_token_that_made_it() {
    let secrets = SecretsDir::new();
    secrets.put("webhooks/key", "hmac-key");
    let app = TestApp::builder()
        .env("DROVER_SECRETS_DIR", secrets.path())
        .spawn()
        .await;
    let lead_token = app.issue_token("lead", "admin").await;
    let lead = app.with_token(&lead_token);
    let ok = |(status, body): (reqwest::StatusCode, Value)| {
        assert!(status.is_success(), "{status} {body}");
        body
    };
    // Nothing listens on port 9: the deliveries stay pending, which is all this needs.
    let audit = json!({ "name": "audit", "url": "http://127.0.0.1:9/hook",
        "events": ["schedule.*", "webhook.*", "token.*", "migration_set.*", "tenant.limits_updated"],
        "secret_ref": "file:webhooks/key" });
    ok(lead.call(Method::POST, "/v1/webhooks", Some(audit)).await);
    let other = json!({ "name": "other", "url": "https://hooks.example.com/services/T0/B0/XXXXXXXXXXXXXXXXXXXX",
        "events": ["*"], "secret_ref": "file:webhooks/key" });

    // Every change, made by `lead`.
    let schedule = json!({ "name": "nightly", "cron": "0 3 * * *" });
    ok(lead
        .call(Method::POST, "/v1/schedules", Some(schedule))
        .await);
    let patch = json!({ "enabled": false });
    ok(lead
        .call(Method::PATCH, "/v1/schedules/nightly", Some(patch))
        .await);
    let (trigger_status, _) = lead
        .call(Method::POST, "/v1/schedules/nightly/trigger", None)
        .await;
    ok(lead
        .call(Method::DELETE, "/v1/schedules/nightly", None)
        .await);
    ok(lead.call(Method::POST, "/v1/webhooks", Some(other)).await);
    ok(lead.call(Method::DELETE, "/v1/webhooks/other", None).await);
    let (_, created_token) = lead
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({ "name": "grafana", "role": "viewer" })),
        )
        .await;
    ok(lead.call(Method::DELETE, "/v1/tokens/grafana", None).await);
    let set = ok(lead
        .call(
            Method::POST,
            "/v1/migration-sets",
            Some(set_body(&[("V1__a.sql", "select 1;")], Some("v1"))),
        )
        .await);
    let set_id = set["id"].as_str().unwrap().to_string();
    ok(lead
        .call(
            Method::DELETE,
            &format!("/v1/migration-sets/{set_id}"),
            None,
        )
        .await);
    app.create_tenant(&tenant_body("acme")).await;
    ok(lead
        .call(
            Method::PUT,
            "/v1/tenants/acme/limits",
            Some(json!({ "max_users": 50 })),
        )
        .await);

    let schedules = events(&app, "schedule.*").await;
    let types = |evs: &[Value]| -> Vec<String> {
        evs.iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    };
    let by_lead = events(&app, "*").await;
    let by_lead: Vec<&Value> = by_lead
        .iter()
        .filter(|e| e["actor"] == "token:lead")
        .collect();
    let lead_types: Vec<&str> = by_lead
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    let tokens = events(&app, "token.*").await;
    let hooks = events(&app, "webhook.*").await;
    let sets = events(&app, "migration_set.*").await;
    let limits = events(&app, "tenant.limits_updated").await;
    let delivered: Vec<String> = app
        .control_db()
        .await
        .query(
            "SELECT d.event_type FROM control_plane.webhook_deliveries d \
             JOIN control_plane.webhooks w ON w.id = d.webhook_id WHERE w.name = 'audit' ORDER BY d.event_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("event_type"))
        .collect();

    assert_eq!(
        trigger_status.as_u16(),
        422,
        "no tenant: the tick fails, and is an event"
    );
    assert_eq!(
        types(&schedules),
        [
            "schedule.created",
            "schedule.updated",
            "schedule.triggered",
            "schedule.deleted"
        ]
    );
    assert_eq!(
        schedules[1]["payload"]["changed"],
        json!({ "enabled": false })
    );
    for t in [
        "schedule.created",
        "schedule.updated",
        "schedule.triggered",
        "schedule.deleted",
        "webhook.created",
        "webhook.deleted",
        "token.created",
        "token.revoked",
        "migration_set.pushed",
        "migration_set.deleted",
        "tenant.limits_updated",
    ] {
        assert!(
            lead_types.contains(&t),
            "{t} by token:lead in {lead_types:?}"
        );
    }
    assert_eq!(
        types(&tokens),
        ["token.created", "token.created", "token.revoked"]
    );
    assert_eq!(tokens[1]["payload"]["token"], "grafana");
    assert_eq!(tokens[1]["payload"]["role"], "viewer");
    let secret = created_token["token"].as_str().unwrap();
    let feed_text = serde_json::to_string(&events(&app, "*").await).unwrap();
    assert!(!feed_text.contains(secret), "a token is never in an event");
    assert!(
        !feed_text.contains(&lead_token),
        "a token is never in an event"
    );
    assert!(
        !feed_text.contains("XXXXXXXXXXXXXXXXXXXX"),
        "a webhook's URL is shown redacted: {hooks:?}"
    );
    assert_eq!(
        types(&hooks),
        ["webhook.created", "webhook.created", "webhook.deleted"]
    );
    assert_eq!(
        types(&sets),
        ["migration_set.pushed", "migration_set.deleted"]
    );
    assert_eq!(sets[0]["payload"]["set_id"], set_id);
    assert_eq!(limits.len(), 1, "{limits:?}");
    assert_eq!(limits[0]["tenant"], "acme");
    for t in [
        "schedule.deleted",
        "token.revoked",
        "migration_set.pushed",
        "tenant.limits_updated",
    ] {
        assert!(
            delivered.iter().any(|d| d == t),
            "{t} delivered to the audit webhook: {delivered:?}"
        );
    }
}
