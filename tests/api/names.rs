//! A tenant's name beyond its syntax (README.md#tenant-lifecycle): reserved slugs, the
//! portal URL from a template, renames with an alias.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

async fn json_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A definition of `slug` as `PUT /v1/tenants/{slug}` and `drover apply` take it.
fn definition(slug: &str) -> String {
    format!(
        "apiVersion: drover.dev/v1\nkind: Tenant\nmetadata: {{name: {slug}, displayName: {slug}}}\n\
         spec: {{database: {{host: db1, name: t_{db}, user: u, secretRef: 'file:tenants/{slug}'}}, status: active}}\n",
        db = slug.replace('-', "_")
    )
}

async fn put_definition(app: &TestApp, slug: &str, body: String) -> (StatusCode, Value) {
    let resp = app
        .req(Method::PUT, &format!("/v1/tenants/{slug}"))
        .header("content-type", "application/yaml")
        .body(body)
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

#[tokio::test]
async fn a_reserved_slug_is_refused_by_create_and_by_apply_and_nothing_is_written() {
    let app = spawn_app().await;

    let mut refused = Vec::new();
    for slug in ["www", "api", "status", "drover", "healthz"] {
        refused.push(json_of(app.create_tenant(&tenant_body(slug)).await).await);
    }
    refused.push(put_definition(&app, "mail", definition("mail")).await);
    let (lookup, _) = json_of(app.get_tenant("www").await).await;

    for (status, body) in &refused {
        assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "slug_reserved", "{body}");
        assert_eq!(body["error"]["field"], "slug", "{body}");
    }
    assert_eq!(app.tenant_rows("true").await, 0);
    assert_eq!(app.event_rows().await, 0);
    // Looking a reserved name up finds nothing; it is not a malformed request.
    assert_eq!(lookup, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reserved_slugs_replaces_the_default_list_but_never_drovers_own_names() {
    let app = TestApp::builder()
        .env("DROVER_RESERVED_SLUGS", "Internal-Tools, billing")
        .spawn()
        .await;

    let (blog, blog_body) = json_of(app.create_tenant(&tenant_body("blog")).await).await;
    let (tools, tools_body) =
        json_of(app.create_tenant(&tenant_body("internal-tools")).await).await;
    let (own, own_body) = json_of(app.create_tenant(&tenant_body("v1")).await).await;

    assert_eq!(blog, StatusCode::CREATED, "{blog_body}");
    assert_eq!(tools, StatusCode::UNPROCESSABLE_ENTITY, "{tools_body}");
    assert_eq!(tools_body["error"]["code"], "slug_reserved");
    assert_eq!(own, StatusCode::UNPROCESSABLE_ENTITY, "{own_body}");
    assert_eq!(own_body["error"]["code"], "slug_reserved");
}

#[tokio::test]
async fn a_reserved_slugs_entry_that_is_not_a_slug_stops_the_start_up() {
    let config = drover::config::Config::load_with(None, &|k| match k {
        "DROVER_DATABASE_URL" => Some("postgres://localhost/x".into()),
        "DROVER_RESERVED_SLUGS" => Some("www, not a slug".into()),
        _ => None,
    });

    let problems = config.expect_err("a bad entry is refused").problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].key.contains("DROVER_RESERVED_SLUGS"));
    assert!(problems[0].message.contains("not a slug"), "{problems:?}");
}
