//! A tenant's name beyond its syntax (README.md#tenant-lifecycle): reserved slugs, the
//! portal URL from a template, renames with an alias.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

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

/// Runs the real `drover` binary against `app` (off the runtime serving it); its stdout.
async fn drover(app: &TestApp, args: &[&str]) -> String {
    let mut cmd = drover_cmd();
    cmd.env("DROVER_SERVER", app.base())
        .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "drover {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_url_follows_the_template_unless_set_and_shows_in_the_api_cli_and_export() {
    let app = TestApp::builder()
        .env("DROVER_PORTAL_URL_TEMPLATE", "https://{slug}.example.com")
        .spawn()
        .await;
    let mut own = tenant_body("own");
    own["portal_url"] = json!("https://portal.own.example");

    let (_, templated) = json_of(app.create_tenant(&tenant_body("templated")).await).await;
    let (_, explicit) = json_of(app.create_tenant(&own).await).await;
    let (_, back) = json_of(app.patch_tenant("own", &json!({"portal_url": null})).await).await;
    let (_, set) = json_of(
        app.patch_tenant("templated", &json!({"portal_url": "https://t.example/app"}))
            .await,
    )
    .await;
    let (bad, bad_body) = json_of(
        app.patch_tenant("own", &json!({"portal_url": "javascript:alert(1)"}))
            .await,
    )
    .await;
    let shown = drover(&app, &["tenants", "get", "own"]).await;
    let dir = temp_dir("export");
    drover(&app, &["export", "-o", dir.to_str().unwrap()]).await;
    let exported_own = std::fs::read_to_string(dir.join("own.yaml")).unwrap();
    let exported_templated = std::fs::read_to_string(dir.join("templated.yaml")).unwrap();
    let applied = put_definition(&app, "own", exported_own.clone()).await;

    assert_eq!(templated["portal_url"], "https://templated.example.com");
    assert_eq!(templated["portal_url_explicit"], false);
    assert_eq!(explicit["portal_url"], "https://portal.own.example");
    assert_eq!(explicit["portal_url_explicit"], true);
    assert_eq!(back["portal_url"], "https://own.example.com", "{back}");
    assert_eq!(back["portal_url_explicit"], false);
    assert_eq!(set["portal_url"], "https://t.example/app");
    assert_eq!(bad, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_body["error"]["field"], "portal_url");
    assert!(shown.contains("https://own.example.com"), "{shown}");
    // Only an explicit URL is declared; the template's shows as observed status.
    assert!(
        exported_templated.contains("portalUrl: https://t.example/app"),
        "{exported_templated}"
    );
    let (spec, status) = exported_own.split_once("\nstatus:").unwrap();
    assert!(!spec.contains("portalUrl"), "{exported_own}");
    assert!(
        status.contains("portalUrl: https://own.example.com"),
        "{exported_own}"
    );
    assert_eq!(applied.0, StatusCode::OK, "{}", applied.1);
    assert_eq!(applied.1["portal_url_explicit"], false);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn without_a_template_a_tenant_has_no_portal_url_until_one_is_declared() {
    let app = spawn_app().await;
    let mut declared = definition("declared");
    declared = declared.replace(
        "status: active}",
        "status: active, portalUrl: 'https://d.example'}",
    );

    let (_, plain) = json_of(app.create_tenant(&tenant_body("plain")).await).await;
    let (status, with_url) = put_definition(&app, "declared", declared).await;

    assert!(plain["portal_url"].is_null(), "{plain}");
    assert_eq!(status, StatusCode::CREATED, "{with_url}");
    assert_eq!(with_url["portal_url"], "https://d.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_tenant_resolves_under_its_old_slug_which_stays_reserved_until_the_alias_expires()
{
    let secrets = SecretsDir::new();
    secrets.put("tenants/old-name", "pw");
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_RENAME_ALIAS_TTL", "4s"),
            ("DROVER_TENANT_CACHE_TTL", "1s"),
            ("DROVER_PORTAL_URL_TEMPLATE", "https://{slug}.example.com"),
        ])
        .spawn()
        .await;
    app.create_tenant(&tenant_body("old-name")).await;
    app.create_tenant(&tenant_body("other")).await;
    let (_, cached) = json_of(app.resolve("old-name").await).await;
    let rename = |from: &str, to: &str| {
        let (path, body) = (format!("/v1/tenants/{from}/rename"), json!({"slug": to}));
        let app = &app;
        async move { json_of(app.post_json(&path, &body).await).await }
    };

    let (status, renamed) = rename("old-name", "new-name").await;
    let (via_alias, alias_body) = json_of(app.resolve("old-name").await).await;
    let (taken, taken_body) = json_of(app.create_tenant(&tenant_body("old-name")).await).await;
    let (onto_live, onto_live_body) = rename("other", "new-name").await;
    let (onto_alias, onto_alias_body) = rename("other", "old-name").await;
    let (reserved, _) = rename("other", "www").await;
    let kinds = app.event_types("new-name").await;
    let by_old_name = app.get_tenant("old-name").await.status();
    let dir = temp_dir("export");
    drover(&app, &["export", "-o", dir.to_str().unwrap()]).await;
    let exported = std::fs::read_to_string(dir.join("new-name.yaml")).unwrap();
    let events_before = app.event_rows().await;
    let (reapplied, _) = put_definition(&app, "new-name", exported.clone()).await;
    let events_after = app.event_rows().await;
    let expired = wait_until(std::time::Duration::from_secs(30), || async {
        app.resolve("old-name").await.status() == StatusCode::NOT_FOUND
    })
    .await;
    let mut again = tenant_body("old-name");
    again["db_name"] = json!("t_old_name_again");
    let (reused, reused_body) = json_of(app.create_tenant(&again).await).await;

    assert_eq!(cached["slug"], "old-name");
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["slug"], "new-name");
    assert_eq!(renamed["portal_url"], "https://new-name.example.com");
    assert_eq!(via_alias, StatusCode::OK, "{alias_body}");
    assert_eq!(alias_body["slug"], "new-name");
    assert_eq!(taken, StatusCode::UNPROCESSABLE_ENTITY, "{taken_body}");
    assert_eq!(taken_body["error"]["code"], "slug_reserved");
    assert_eq!(onto_live, StatusCode::CONFLICT, "{onto_live_body}");
    assert_eq!(
        onto_alias,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{onto_alias_body}"
    );
    assert_eq!(reserved, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(kinds[0], "renamed", "{kinds:?}");
    assert_eq!(by_old_name, StatusCode::NOT_FOUND);
    assert!(exported.contains("name: new-name"), "{exported}");
    assert!(!dir.join("old-name.yaml").exists());
    assert_eq!(reapplied, StatusCode::OK);
    assert_eq!(
        events_after, events_before,
        "apply of the export changed something"
    );
    assert!(expired, "the alias still resolves after its ttl");
    assert_eq!(reused, StatusCode::CREATED, "{reused_body}");
    let _ = std::fs::remove_dir_all(dir);
}
