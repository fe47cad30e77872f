//! Tenants as code: `drover apply -f DIR` and `drover export -o DIR` (the real binary
//! against a real daemon), and `PUT /v1/tenants/{slug}` with JSON and YAML bodies.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{drover_cmd, spawn_app, tenant_body, TestApp, ADMIN_TOKEN};

/// A temporary directory of definition files.
struct DefsDir(PathBuf);

impl DefsDir {
    fn new() -> DefsDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "drover-test-defs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        DefsDir(dir)
    }

    fn put(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.0.join(rel)).unwrap()
    }

    fn remove(&self, rel: &str) {
        std::fs::remove_file(self.0.join(rel)).unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DefsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A definition in block style with every field a test edits on its own line.
fn definition(slug: &str, region: &str) -> String {
    format!(
        "apiVersion: drover.dev/v1
kind: Tenant
metadata:
  name: {slug}
  displayName: \"{slug} Inc.\"
  labels:
    plan: pro
    region: {region}
spec:
  database:
    host: db1.internal
    port: 5432
    name: t_{db}
    user: u_{db}
    secretRef: file:tenants/{slug}
  canary: false
  status: active
",
        db = slug.replace('-', "_")
    )
}

/// 50 tenants: 40 in a file each, 10 as documents of one file in a subdirectory.
fn fifty(dir: &DefsDir) {
    for i in 0..40 {
        let slug = format!("t-{i:03}");
        dir.put(&format!("{slug}.yaml"), &definition(&slug, "eu"));
    }
    let many: Vec<String> = (40..50)
        .map(|i| definition(&format!("t-{i:03}"), "eu"))
        .collect();
    dir.put("more/batch.yml", &many.join("---\n"));
}

/// Runs the real `drover` binary against `app` without blocking the runtime serving it.
async fn drover(app: &TestApp, args: &[&str]) -> Output {
    let mut cmd = drover_cmd();
    cmd.env("DROVER_SERVER", app.base())
        .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

async fn apply(app: &TestApp, dir: &DefsDir, extra: &[&str]) -> Output {
    let path = dir.path().to_str().unwrap().to_string();
    let mut args = vec!["apply", "-f", path.as_str()];
    args.extend_from_slice(extra);
    drover(app, &args).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// `PUT /v1/tenants/{slug}` with a body of `content_type`.
async fn put(app: &TestApp, slug: &str, content_type: &str, body: String) -> reqwest::Response {
    app.req(Method::PUT, &format!("/v1/tenants/{slug}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn definition_json(slug: &str, region: &str) -> Value {
    let d: Value = yaml_serde::from_str(&definition(slug, region)).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_fifty_tenants_from_files_and_a_second_run_changes_nothing() {
    let app = spawn_app().await;
    let dir = DefsDir::new();
    fifty(&dir);

    let first = apply(&app, &dir, &[]).await;
    let events_after_first = app.event_rows().await;
    let second = apply(&app, &dir, &[]).await;

    let out = succeeded(&first);
    assert!(
        out.contains("Plan (50 definitions): 50 to create, 0 to update, 0 to delete, 0 unchanged."),
        "{out}"
    );
    assert!(out.contains("+ create t-000"), "{out}");
    assert!(
        out.contains("Applied: 50 created, 0 updated, 0 deleted"),
        "{out}"
    );
    assert_eq!(app.tenant_rows("deleted_at IS NULL").await, 50);
    assert_eq!(events_after_first, 50, "one created event each");
    let t: Value = app.get_json("/v1/tenants/t-045").await;
    assert_eq!(t["status"], "active");
    assert_eq!(t["labels"], json!({"plan": "pro", "region": "eu"}));
    assert_eq!(t["db_secret_ref"], "file:tenants/t-045");

    let again = succeeded(&second);
    assert!(
        again.contains("0 to create, 0 to update, 0 to delete, 50 unchanged."),
        "{again}"
    );
    assert!(again.contains("Nothing to do."), "{again}");
    assert_eq!(app.event_rows().await, events_after_first, "no writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_one_file_is_exactly_one_update_showing_the_field_diff() {
    let app = spawn_app().await;
    let dir = DefsDir::new();
    fifty(&dir);
    succeeded(&apply(&app, &dir, &[]).await);
    let events_before = app.event_rows().await;
    dir.put("t-007.yaml", &definition("t-007", "us"));

    let dry = apply(&app, &dir, &["--dry-run"]).await;
    let events_after_dry_run = app.event_rows().await;
    let real = apply(&app, &dir, &[]).await;

    let plan = succeeded(&dry);
    assert!(plan.contains("~ update t-007"), "{plan}");
    assert!(plan.contains("    labels.region: eu -> us"), "{plan}");
    assert!(
        plan.contains("0 to create, 1 to update, 0 to delete, 49 unchanged."),
        "{plan}"
    );
    assert!(plan.contains("Dry run: nothing applied."), "{plan}");
    assert_eq!(events_after_dry_run, events_before);
    let out = succeeded(&real);
    assert!(out.contains("updated t-007"), "{out}");
    assert_eq!(app.event_rows().await, events_before + 1);
    let events: Value = app.get_json("/v1/tenants/t-007/events").await;
    assert_eq!(events["items"][0]["event_type"], "updated");
    assert_eq!(
        events["items"][0]["payload"]["changed"]["labels"]["to"]["region"],
        "us"
    );
    assert_eq!(events["items"][0]["actor"], "root");
    assert!(events["items"][0]["payload"]["on_behalf_of"]
        .as_str()
        .unwrap()
        .starts_with("cli:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_file_is_kept_without_prune_and_soft_deleted_with_it() {
    let app = spawn_app().await;
    let dir = DefsDir::new();
    fifty(&dir);
    succeeded(&apply(&app, &dir, &[]).await);
    dir.remove("t-013.yaml");

    let kept = apply(&app, &dir, &[]).await;
    let still_there = app.get_tenant("t-013").await.status();
    let pruned = apply(&app, &dir, &["--prune"]).await;
    let after_prune = apply(&app, &dir, &["--prune"]).await;

    let out = succeeded(&kept);
    assert!(
        out.contains("Not in the files, kept (--prune deletes them): t-013"),
        "{out}"
    );
    assert!(out.contains("0 to delete, 49 unchanged."), "{out}");
    assert_eq!(still_there, StatusCode::OK);
    let out = succeeded(&pruned);
    assert!(out.contains("- delete t-013"), "{out}");
    assert!(out.contains("deleted t-013"), "{out}");
    assert_eq!(
        app.get_tenant("t-013").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.tenant_rows("slug = 't-013' AND status = 'deleted' AND deleted_at IS NOT NULL")
            .await,
        1
    );
    assert_eq!(app.tenant_rows("deleted_at IS NULL").await, 49);
    assert!(succeeded(&after_prune).contains("Nothing to do."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_with_one_bad_file_applies_nothing_and_reports_every_error() {
    let app = spawn_app().await;
    let dir = DefsDir::new();
    fifty(&dir);
    let bad = [
        definition("bad-one", "eu").replace("    port: 5432\n", "    port: 99999\n"),
        definition("bad-two", "eu")
            .replace("  canary: false\n", "  canary: false\n  colour: blue\n"),
        definition("bad-three", "eu")
            .replace("file:tenants/bad-three", "postgres://u:secret@db/x")
            .replace("status: active", "status: deleted"),
    ];
    dir.put("zz-bad.yaml", &bad.join("---\n"));

    let out = apply(&app, &dir, &[]).await;

    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    let file = dir.path().join("zz-bad.yaml").display().to_string();
    for expected in [
        format!("{file}:12: document 1: spec.database.port: must be between 1 and 65535"),
        "document 2: spec.colour: unknown field `colour`".to_string(),
        format!("{file}:52: document 3: spec.database.secretRef:"),
        format!("{file}:54: document 3: spec.status: cannot be declared"),
        "error: 4 problem(s) in the tenant definitions; nothing was applied".to_string(),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        !err.contains("secret@db"),
        "the bad ref is not echoed back: {err}"
    );
    assert_eq!(app.tenant_rows("true").await, 0, "nothing applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_apply_is_a_no_op() {
    let app = spawn_app().await;
    let mut varied = tenant_body("varied");
    varied["db_options"] = json!({"sslmode": "verify-full", "connect_timeout": "10"});
    varied["billing_plan"] = json!("enterprise");
    varied["contact_email"] = json!("ops@varied.example");
    varied["app_version"] = json!("2024.1");
    varied["maintenance_flag"] = json!(true);
    varied["canary"] = json!(true);
    varied["labels"] = json!({"yes": "no", "zip": "007", "empty": "", "x.io/team": "a: b"});
    let mut waiting = tenant_body("waiting");
    waiting["status"] = json!("provisioning");
    for body in [varied, waiting, tenant_body("plain"), tenant_body("paused")] {
        assert_eq!(app.create_tenant(&body).await.status(), StatusCode::CREATED);
    }
    app.act(
        "paused",
        "suspend",
        Some(json!({"reason": "invoice overdue: Q3"})),
    )
    .await;
    let dir = DefsDir::new();
    let events_before = app.event_rows().await;

    let exported = drover(&app, &["export", "-o", dir.path().to_str().unwrap()]).await;
    let applied = apply(&app, &dir, &["--prune"]).await;

    assert!(
        succeeded(&exported).contains("Wrote 4 definitions to"),
        "{}",
        stdout(&exported)
    );
    let paused = dir.read("paused.yaml");
    assert!(paused.contains("status: suspended"), "{paused}");
    assert!(
        paused.contains("suspendedReason: 'invoice overdue: Q3'"),
        "{paused}"
    );
    assert!(
        dir.read("varied.yaml")
            .contains("secretRef: file:tenants/varied"),
        "secrets stay references"
    );
    let out = succeeded(&applied);
    assert!(
        out.contains("0 to create, 0 to update, 0 to delete, 4 unchanged."),
        "{out}"
    );
    assert_eq!(app.event_rows().await, events_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_in_a_definition_suspends_and_resumes_the_tenant() {
    let app = spawn_app().await;
    let dir = DefsDir::new();
    dir.put("acme.yaml", &definition("acme", "eu"));
    succeeded(&apply(&app, &dir, &[]).await);

    dir.put(
        "acme.yaml",
        &definition("acme", "eu").replace(
            "  status: active\n",
            "  status: suspended\n  suspendedReason: invoice overdue\n",
        ),
    );
    let suspend = apply(&app, &dir, &[]).await;
    let suspended: Value = app.get_json("/v1/tenants/acme").await;
    dir.put("acme.yaml", &definition("acme", "eu"));
    let resume = apply(&app, &dir, &[]).await;
    let resumed: Value = app.get_json("/v1/tenants/acme").await;

    let out = succeeded(&suspend);
    assert!(out.contains("    status: active -> suspended"), "{out}");
    assert!(
        out.contains("    suspendedReason: (unset) -> \"invoice overdue\""),
        "{out}"
    );
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["suspended_reason"], "invoice overdue");
    succeeded(&resume);
    assert_eq!(resumed["status"], "active");
    assert_eq!(resumed["suspended_reason"], Value::Null);
    assert_eq!(
        app.event_types("acme").await,
        vec!["resumed", "suspended", "created"],
        "status changes write their own events and nothing else"
    );
    let events: Value = app.get_json("/v1/tenants/acme/events").await;
    assert_eq!(events["items"][1]["payload"]["reason"], "invoice overdue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_cannot_declare_a_status_the_tenant_cannot_reach() {
    let app = spawn_app().await;
    let dir = DefsDir::new();
    dir.put("acme.yaml", &definition("acme", "eu"));
    succeeded(&apply(&app, &dir, &[]).await);
    dir.put(
        "acme.yaml",
        &definition("acme", "us").replace("status: active", "status: provisioning"),
    );
    let events_before = app.event_rows().await;

    let out = apply(&app, &dir, &[]).await;
    let mut body = definition_json("acme", "us");
    body["spec"]["status"] = json!("provisioning");
    let resp = put(&app, "acme", "application/json", body.to_string()).await;

    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let file = dir.path().join("acme.yaml").display().to_string();
    assert!(
        err.contains(&format!(
            "{file}:17: document 1: spec.status: cannot re-provision tenant 'acme': it is active, \
             the definition says provisioning (a tenant never returns to provisioning)"
        )),
        "{err}"
    );
    assert!(err.contains("nothing was applied"), "{err}");
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "illegal_transition");
    assert_eq!(
        app.event_rows().await,
        events_before,
        "not even the label changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_provision_asks_the_daemon_to_provision_new_tenants() {
    let app = spawn_app().await;
    let dir = DefsDir::new();
    dir.put("acme.yaml", &definition("acme", "eu"));

    let out = apply(&app, &dir, &["--provision"]).await;

    // This daemon has no DROVER_PROVISION_URL: the request reaches it with `provision:
    // true` and is refused; nothing is registered half-way.
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("error: acme (Create): 501"), "{err}");
    assert!(err.contains("provision"), "{err}");
    assert_eq!(app.tenant_rows("true").await, 0);
}

#[tokio::test]
async fn put_creates_from_yaml_updates_from_json_and_writes_nothing_when_unchanged() {
    let app = spawn_app().await;

    let created = put(&app, "acme", "application/yaml", definition("acme", "eu")).await;
    let status_created = created.status();
    let t: Value = created.json().await.unwrap();
    let updated = put(
        &app,
        "acme",
        "application/json",
        definition_json("acme", "us").to_string(),
    )
    .await;
    let status_updated = updated.status();
    let u: Value = updated.json().await.unwrap();
    let events_before_same = app.event_rows().await;
    let same = put(
        &app,
        "ACME",
        "text/yaml; charset=utf-8",
        definition("acme", "us"),
    )
    .await;

    assert_eq!(status_created, StatusCode::CREATED);
    assert_eq!(t["slug"], "acme");
    assert_eq!(t["status"], "active");
    assert_eq!(status_updated, StatusCode::OK);
    assert_eq!(u["labels"]["region"], "us");
    assert_eq!(same.status(), StatusCode::OK);
    assert_eq!(app.event_rows().await, events_before_same);
    assert_eq!(app.event_types("acme").await, vec!["updated", "created"]);
}

#[tokio::test]
async fn put_refuses_a_path_slug_that_differs_from_metadata_name_with_422() {
    let app = spawn_app().await;

    let resp = put(
        &app,
        "beta",
        "application/json",
        definition_json("acme", "eu").to_string(),
    )
    .await;

    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "name_mismatch");
    assert!(e["error"]["message"].as_str().unwrap().contains("'acme'"));
    assert_eq!(app.tenant_rows("true").await, 0);
}

#[tokio::test]
async fn put_reports_every_problem_of_a_yaml_body_with_field_and_line() {
    let app = spawn_app().await;
    let body = definition("acme", "eu")
        .replace("port: 5432", "port: 0")
        .replace("status: active", "status: suspended");

    let bad = put(&app, "acme", "application/x-yaml", body).await;
    let status_bad = bad.status();
    let e: Value = bad.json().await.unwrap();
    let syntax = put(&app, "acme", "application/yaml", "metadata: [".into()).await;
    let unknown = put(
        &app,
        "acme",
        "application/yaml",
        definition("acme", "eu").replace("kind: Tenant\n", "kind: Tenant\nextra: 1\n"),
    )
    .await;
    let plain = put(&app, "acme", "text/plain", definition("acme", "eu")).await;

    assert_eq!(status_bad, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["code"], "invalid_definition");
    assert_eq!(
        e["error"]["problems"],
        json!([
            {"field": "spec.database.port", "line": 12, "message": "must be between 1 and 65535"},
            {"field": "spec.suspendedReason", "line": 17, "message": "required when status is suspended"},
        ])
    );
    assert_eq!(syntax.status(), StatusCode::BAD_REQUEST);
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let u: Value = unknown.json().await.unwrap();
    assert_eq!(u["error"]["problems"][0]["field"], "extra");
    assert_eq!(u["error"]["problems"][0]["line"], 3);
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.tenant_rows("true").await, 0);
}

#[tokio::test]
async fn put_of_a_suspended_definition_creates_then_suspends_in_one_go() {
    let app = spawn_app().await;
    let body = definition("acme", "eu").replace(
        "  status: active\n",
        "  status: suspended\n  suspendedReason: '  fraud review  '\n",
    );

    let resp = put(&app, "acme", "application/yaml", body.clone()).await;
    let status = resp.status();
    let t: Value = resp.json().await.unwrap();
    let events_before = app.event_rows().await;
    let again = put(&app, "acme", "application/yaml", body).await;

    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(t["status"], "suspended");
    assert_eq!(t["suspended_reason"], "fraud review");
    assert_eq!(app.event_types("acme").await, vec!["suspended", "created"]);
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        app.event_rows().await,
        events_before,
        "trimmed reason compares equal"
    );
}

#[tokio::test]
async fn concurrent_puts_of_one_new_tenant_both_succeed_and_create_it_once() {
    let app = spawn_app().await;

    let (a, b) = tokio::join!(
        put(&app, "acme", "application/yaml", definition("acme", "eu")),
        put(&app, "acme", "application/yaml", definition("acme", "eu")),
    );

    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CREATED]);
    assert_eq!(app.tenant_rows("slug = 'acme'").await, 1);
    assert_eq!(app.event_types("acme").await, vec!["created"]);
}
