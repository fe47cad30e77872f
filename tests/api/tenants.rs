//! The tenant registry through the HTTP API.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, tenant_body};

#[tokio::test]
async fn creating_a_tenant_returns_201_and_writes_a_created_event() {
    let app = spawn_app().await;

    let resp = app.create_tenant(&tenant_body("acme")).await;

    assert_eq!(resp.status(), StatusCode::CREATED);
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["slug"], "acme");
    assert_eq!(t["status"], "active");
    assert_eq!(t["schema_version"], Value::Null);
    assert_eq!(app.event_types("acme").await, vec!["created"]);
}

#[tokio::test]
async fn slug_is_case_insensitive_so_a_duplicate_differing_in_case_is_409() {
    let app = spawn_app().await;
    assert_eq!(
        app.create_tenant(&tenant_body("acme")).await.status(),
        StatusCode::CREATED
    );
    let mut upper = tenant_body("acme");
    upper["slug"] = json!("ACME");
    upper["db_name"] = json!("t_other");

    let resp = app.create_tenant(&upper).await;

    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "duplicate_slug");
    assert_eq!(app.tenant_rows("true").await, 1);
    assert_eq!(app.get_tenant("AcMe").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn duplicate_db_name_differing_in_case_is_409() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("acme")).await;
    let mut other = tenant_body("globex");
    other["db_name"] = json!("T_ACME");

    let resp = app.create_tenant(&other).await;

    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "duplicate_db_name");
}

#[tokio::test]
async fn soft_deleted_slug_and_db_name_can_be_reused() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("acme")).await;
    let del = app.delete_tenant("acme").await;
    assert_eq!(del.status(), StatusCode::OK);
    let deleted: Value = del.json().await.unwrap();
    assert_eq!(deleted["status"], "deleted");
    assert!(deleted["deleted_at"].is_string());

    let again = app.create_tenant(&tenant_body("acme")).await;

    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(app.tenant_rows("slug = 'acme'").await, 2);
    assert_eq!(
        app.tenant_rows("slug = 'acme' AND deleted_at IS NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn bad_slug_is_422_naming_the_field_and_writes_no_row() {
    let app = spawn_app().await;
    for bad in [
        "-acme",
        "acme_corp",
        "a.b",
        "admin",
        &"x".repeat(64),
        "",
        "ümlaut",
    ] {
        let resp = app.create_tenant(&tenant_body(bad)).await;

        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["field"], "slug", "{bad:?}");
    }
    assert_eq!(app.tenant_rows("true").await, 0);
    assert_eq!(app.event_rows().await, 0);
}

#[tokio::test]
async fn secret_ref_holding_a_url_credentials_or_dotdot_is_422_and_writes_no_row() {
    let app = spawn_app().await;
    for bad in [
        "postgres://u:pw@db1/t_acme",
        "file:tenants/../../etc/shadow",
        "env:USER@HOST",
        "hunter2",
        "file:/etc/shadow",
    ] {
        let mut body = tenant_body("acme");
        body["db_secret_ref"] = json!(bad);

        let resp = app.create_tenant(&body).await;

        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("db_secret_ref"), "{text}");
        assert!(
            !text.contains(bad),
            "the error must not echo the value: {text}"
        );
    }
    assert_eq!(app.tenant_rows("true").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creates_of_one_slug_yield_one_201_and_49_409() {
    let app = spawn_app().await;
    let body = tenant_body("race");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (req, barrier) = (
                app.req(Method::POST, "/v1/tenants").json(&body),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                req.send().await.unwrap().status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }

    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        49,
        "{statuses:?}"
    );
    assert_eq!(app.tenant_rows("true").await, 1);
    assert_eq!(app.event_rows().await, 1);
}

#[tokio::test]
async fn unknown_json_field_is_422_naming_the_field() {
    let app = spawn_app().await;
    let mut body = tenant_body("acme");
    body["colour"] = json!("blue");

    let resp = app.create_tenant(&body).await;

    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_body");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("colour"),
        "{err}"
    );
}

#[tokio::test]
async fn patch_changes_only_given_fields_and_records_old_and_new_values() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("acme")).await;

    let resp = app
        .patch_tenant("acme", &json!({"display_name": "Acme Corp", "labels": {"plan": "enterprise"}, "billing_plan": "gold"})).await;

    assert_eq!(resp.status(), StatusCode::OK);
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["display_name"], "Acme Corp");
    assert_eq!(t["labels"], json!({"plan": "enterprise"}));
    assert_eq!(t["db_host"], "db1.internal");
    let db = app.control_db().await;
    let payload: Value = db
        .query_one(
            "SELECT payload FROM control_plane.tenant_events WHERE event_type = 'updated'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        payload["changed"]["display_name"],
        json!({"from": "acme Inc.", "to": "Acme Corp"})
    );
    assert_eq!(
        payload["changed"]["billing_plan"],
        json!({"from": null, "to": "gold"})
    );
    assert!(payload["changed"].get("db_host").is_none());
}

#[tokio::test]
async fn patch_that_changes_nothing_writes_no_event() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("acme")).await;

    let resp = app
        .patch_tenant("acme", &json!({"display_name": "acme Inc."}))
        .await;

    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(app.event_rows().await, 1);
}

#[tokio::test]
async fn suspend_resume_and_delete_write_their_events_with_the_actor() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("acme")).await;

    let s = app
        .act("acme", "suspend", Some(json!({"reason": "unpaid invoice"})))
        .await;
    assert_eq!(s.status(), StatusCode::OK);
    let suspended: Value = s.json().await.unwrap();
    assert_eq!(suspended["suspended_reason"], "unpaid invoice");
    let r = app
        .req(Method::POST, "/v1/tenants/acme/resume")
        .header("x-drover-actor", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let resumed: Value = r.json().await.unwrap();
    assert_eq!(resumed["suspended_reason"], Value::Null);
    let events = app.event_types("acme").await;
    app.delete_tenant("acme").await;

    assert_eq!(events, vec!["resumed", "suspended", "created"]);
    let db = app.control_db().await;
    let rows = db
        .query(
            "SELECT event_type, actor, payload FROM control_plane.tenant_events ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.get("event_type"), r.get("actor")))
        .collect();
    assert_eq!(seen[2], ("resumed".to_string(), "root".to_string()));
    let resumed_payload: Value = rows[2].get("payload");
    assert_eq!(resumed_payload["on_behalf_of"], "alice");
    assert_eq!(seen[3].0, "deleting");
    assert_eq!(seen[4].0, "deleted");
}

#[tokio::test]
async fn illegal_transitions_are_refused_and_write_no_event() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("acme")).await;
    let mut prov = tenant_body("initech");
    prov["status"] = json!("provisioning");
    app.create_tenant(&prov).await;
    let events_before = app.event_rows().await;

    let resume_active = app.act("acme", "resume", None).await;
    let suspend_provisioning = app
        .act("initech", "suspend", Some(json!({"reason": "x"})))
        .await;

    assert_eq!(resume_active.status(), StatusCode::CONFLICT);
    let body: Value = resume_active.json().await.unwrap();
    assert_eq!(body["error"]["code"], "illegal_transition");
    assert_eq!(
        body["error"]["message"],
        "cannot resume tenant 'acme': it is active"
    );
    assert_eq!(suspend_provisioning.status(), StatusCode::CONFLICT);
    assert_eq!(app.event_rows().await, events_before);
}

#[tokio::test]
async fn every_operation_on_a_deleted_tenant_is_404() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("acme")).await;
    app.delete_tenant("acme").await;
    let events_before = app.event_rows().await;

    let get = app.get_tenant("acme").await.status();
    let resume = app.act("acme", "resume", None).await.status();
    let suspend = app
        .act("acme", "suspend", Some(json!({"reason": "x"})))
        .await
        .status();
    let delete = app.delete_tenant("acme").await.status();
    let patch = app
        .patch_tenant("acme", &json!({"canary": true}))
        .await
        .status();

    for s in [get, resume, suspend, delete, patch] {
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    assert_eq!(app.event_rows().await, events_before);
}

#[tokio::test]
async fn a_change_whose_event_cannot_be_written_is_rolled_back() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("acme")).await;
    let db = app.control_db().await;
    db.batch_execute(
        "CREATE FUNCTION control_plane.refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'event log is read-only'; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON control_plane.tenant_events \
         FOR EACH ROW EXECUTE FUNCTION control_plane.refuse();",
    )
    .await
    .unwrap();

    let resp = app
        .act("acme", "suspend", Some(json!({"reason": "audit"})))
        .await;

    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains("read-only"),
        "5xx bodies carry no internals: {body}"
    );
    let t: Value = app.get_tenant("acme").await.json().await.unwrap();
    assert_eq!(t["status"], "active");
    assert_eq!(t["suspended_reason"], Value::Null);
}

#[tokio::test]
async fn list_filters_by_status_label_and_text_and_pages_by_keyset() {
    let app = spawn_app().await;
    for (i, slug) in ["alpha", "bravo", "charlie", "delta", "echo"]
        .iter()
        .enumerate()
    {
        let mut b = tenant_body(slug);
        if i % 2 == 0 {
            b["labels"] = json!({"plan": "free"});
        }
        app.create_tenant(&b).await;
    }
    app.act("bravo", "suspend", Some(json!({"reason": "x"})))
        .await;
    let list = |q: &'static str| {
        let req = app.req(Method::GET, &format!("/v1/tenants?{q}"));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let slugs = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["slug"].as_str().unwrap().to_string())
            .collect()
    };

    let suspended = list("status=suspended").await;
    let free = list("label=plan%3Dfree").await;
    let text = list("q=HARL").await;
    let page1 = list("limit=2").await;
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let page2: Value = app
        .get_json(&format!("/v1/tenants?limit=2&cursor={cursor}"))
        .await;
    let bad = app.get("/v1/tenants?status=sleeping").await;

    assert_eq!(slugs(&suspended), vec!["bravo"]);
    assert_eq!(slugs(&free), vec!["alpha", "charlie", "echo"]);
    assert_eq!(slugs(&text), vec!["charlie"]);
    assert_eq!(slugs(&page1), vec!["alpha", "bravo"]);
    assert_eq!(slugs(&page2), vec!["charlie", "delta"]);
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn events_are_paginated_newest_first() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("acme")).await;
    for i in 0..3 {
        app.act("acme", "suspend", Some(json!({"reason": format!("r{i}")})))
            .await;
        app.act("acme", "resume", None).await;
    }

    let first: Value = app.get_json("/v1/tenants/acme/events?limit=4").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .get(&format!("/v1/tenants/acme/events?limit=4&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();

    let types = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        types(&first),
        vec!["resumed", "suspended", "resumed", "suspended"]
    );
    assert_eq!(types(&rest), vec!["resumed", "suspended", "created"]);
    assert!(rest.get("next_cursor").is_none());
}

#[tokio::test]
async fn provisioning_tenant_becomes_active_through_patch_with_a_status_changed_event() {
    let app = spawn_app().await;
    let mut body = tenant_body("acme");
    body["status"] = json!("provisioning");
    app.create_tenant(&body).await;

    let resp = app.patch_tenant("acme", &json!({"status": "active"})).await;
    let suspend_via_patch = app
        .patch_tenant("acme", &json!({"status": "suspended"}))
        .await;

    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        app.event_types("acme").await,
        vec!["status_changed", "created"]
    );
    assert_eq!(suspend_via_patch.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
