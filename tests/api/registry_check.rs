//! `drover check` and `GET /v1/registry/health` against planted inconsistencies.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{drover_cmd, spawn_app, tenant_body};

fn run_check(url: &str, extra: &[&str]) -> std::process::Output {
    drover_cmd()
        .arg("check")
        .args(extra)
        .env("DROVER_DATABASE_URL", url)
        .output()
        .unwrap()
}

#[tokio::test]
async fn drover_check_on_a_clean_registry_exits_zero() {
    let app = spawn_app().await;
    app.create_tenant(&tenant_body("acme")).await;

    let out = run_check(&app.database_url, &[]);

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("registry ok"));
}

#[tokio::test]
async fn drover_check_finds_each_kind_of_planted_inconsistency() {
    let app = spawn_app().await;
    for slug in ["dup-a", "stuck", "mismatch", "zombie", "healthy"] {
        let mut body = tenant_body(slug);
        if slug == "stuck" {
            body["status"] = json!("provisioning");
        }
        app.create_tenant(&body).await;
    }
    let db = app.control_db().await;
    // Plant what the constraints normally prevent, as a bad restore or hand edit would.
    db.batch_execute(
        "DROP INDEX control_plane.tenants_slug_live_key; \
         DROP INDEX control_plane.tenants_db_name_live_key; \
         INSERT INTO control_plane.tenants (slug, display_name, db_name, db_host, db_user, db_secret_ref, status) \
           SELECT slug, display_name, db_name, db_host, db_user, db_secret_ref, status \
           FROM control_plane.tenants WHERE slug = 'dup-a'; \
         ALTER TABLE control_plane.tenants DISABLE TRIGGER tenants_touch_updated_at; \
         UPDATE control_plane.tenants SET updated_at = now() - interval '2 hours' WHERE slug = 'stuck'; \
         ALTER TABLE control_plane.tenants ENABLE TRIGGER tenants_touch_updated_at; \
         UPDATE control_plane.tenants SET schema_version = 4 WHERE slug = 'mismatch'; \
         INSERT INTO control_plane.tenant_events (tenant_id, event_type, actor, payload) \
           SELECT id, 'migrated', 'test', '{\"from\": 2, \"to\": 3}' FROM control_plane.tenants WHERE slug = 'mismatch'; \
         UPDATE control_plane.tenants SET schema_version = 3 WHERE slug = 'healthy'; \
         INSERT INTO control_plane.tenant_events (tenant_id, event_type, actor, payload) \
           SELECT id, 'migrated', 'test', '{\"from\": 2, \"to\": 3}' FROM control_plane.tenants WHERE slug = 'healthy'; \
         UPDATE control_plane.tenants SET deleted_at = now() WHERE slug = 'zombie';",
    )
    .await
    .unwrap();

    let out = run_check(&app.database_url, &["--stuck-after", "1h", "--json"]);
    let api: Value = app.get_json("/v1/registry/health").await;

    assert_eq!(
        out.status.code(),
        Some(drover::cli::EXIT_FINDINGS as i32),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = |kind: &str| -> Vec<String> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == kind)
            .map(|f| {
                f["slugs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(found("duplicate_slug"), vec!["dup-a", "dup-a"]);
    assert_eq!(found("duplicate_db_name"), vec!["dup-a", "dup-a"]);
    assert_eq!(found("stuck_provisioning"), vec!["stuck"]);
    assert_eq!(found("schema_version_mismatch"), vec!["mismatch"]);
    assert_eq!(found("soft_delete_incoherent"), vec!["zombie"]);
    assert_eq!(report["ok"], false);
    assert_eq!(
        api["findings"], report["findings"],
        "the API and the CLI report the same"
    );
}

#[tokio::test]
async fn a_tenant_in_provisioning_within_the_window_is_not_stuck() {
    let app = spawn_app().await;
    let mut body = tenant_body("fresh");
    body["status"] = json!("provisioning");
    app.create_tenant(&body).await;

    let resp = app.get("/v1/registry/health").await;

    assert_eq!(resp.status(), StatusCode::OK);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["ok"], true, "{report}");
}
