//! The lint gate's range: what a wave lints is what it would run, from the oldest version
//! among its tenants to the target, and a schedule's tick passes the same gate.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{wait_until, wave_app, MigrationsDir, SecretsDir, TestApp};

const INDEX_RULE: &str = "require-concurrent-index-creation";

/// V2 builds an index without CONCURRENTLY on a table V1 created: an error finding for
/// any tenant already at V1 (for a tenant at 0 the table is new in the same scope).
/// V3 is harmless.
fn migrations() -> MigrationsDir {
    MigrationsDir::new(&[
        (
            "V1__accounts.sql",
            "CREATE TABLE accounts (id int PRIMARY KEY, email text);",
        ),
        (
            "V2__email_index.sql",
            "CREATE INDEX accounts_email ON accounts (email);",
        ),
        ("V3__note.sql", "ALTER TABLE accounts ADD COLUMN note text;"),
    ])
}

/// Runs a wave to completion (asserting it completes) over `slugs`.
async fn migrate(app: &TestApp, slugs: &[&str], target: i32, acknowledge: &[&str]) -> Value {
    let id = app
        .start_wave(
            json!({"selector": {"slugs": slugs}, "target_version": target,
            "soak_seconds": 0, "canary": {"count": 0}, "acknowledge": acknowledge}),
        )
        .await;
    let wave = app
        .wait_for_wave_state(&id, &["completed", "halted", "aborted"])
        .await;
    assert_eq!(wave["state"], "completed", "{wave:#}");
    wave
}

// Pins: linting from the newest tenant's version (or from the target's), which would let a
// file only the older tenants still have to run through unchecked, and linting from
// version 0 (the whole history), which hides the finding because the table looks new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_mixed_fleet_a_finding_in_a_file_only_older_tenants_still_run_refuses_the_wave() {
    let (m, secrets) = (migrations(), SecretsDir::new());
    let app = wave_app(&m, &secrets, &[]).await;
    app.register_tenants(&secrets, "mix", 2, 0).await;
    let (old, new) = ("mix-000", "mix-001");
    migrate(&app, &[old, new], 1, &[]).await;
    migrate(&app, &[new], 2, &[INDEX_RULE]).await;

    let newer_only = migrate(&app, &[new], 3, &[]).await;
    let both = app
        .create_wave(&json!({"selector": {"slugs": [old, new]}, "soak_seconds": 0}))
        .await;
    let both_status = both.status();
    let refusal: Value = both.json().await.unwrap();

    assert_eq!(both_status, StatusCode::UNPROCESSABLE_ENTITY, "{refusal:#}");
    assert_eq!(refusal["error"]["code"], "lint_failed");
    let findings = refusal["error"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{refusal:#}");
    assert_eq!(findings[0]["rule"], INDEX_RULE);
    assert_eq!(findings[0]["file"], "V2__email_index.sql");
    assert_eq!(
        newer_only["plan"]["lint"]["files"], 1,
        "a tenant at V2 has only V3 to run, and V3 is clean: {:#}",
        newer_only["plan"]["lint"]
    );
}

// Pins: a schedule's tick creating its wave around the lint gate (the gate living only in
// the HTTP handler). The tick must start nothing and record the finding as its reason;
// once the template acknowledges the rule, the next tick fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_tick_whose_wave_would_run_a_lint_error_starts_nothing_and_records_why() {
    let (m, secrets) = (migrations(), SecretsDir::new());
    let app = wave_app(&m, &secrets, &[("DROVER_LEADER_TTL", "3s")]).await;
    app.register_tenants(&secrets, "gate", 2, 0).await;
    migrate(&app, &["gate-000", "gate-001"], 1, &[]).await;
    let db = app.control_db().await;
    let fires = || async {
        db.query(
            "SELECT outcome, detail, wave_id FROM control_plane.schedule_fires \
             WHERE schedule_name = 'nightly' ORDER BY tick",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get::<_, String>("outcome"),
                r.get::<_, Option<String>>("detail").unwrap_or_default(),
                r.get::<_, Option<uuid::Uuid>>("wave_id"),
            )
        })
        .collect::<Vec<_>>()
    };
    let template = json!({"target_version": 2, "soak_seconds": 0, "canary": {"count": 0}});
    let created = app
        .create_schedule(&json!({"name": "nightly", "cron": "* * * * * *", "template": template}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);

    let refused = wait_until(Duration::from_secs(20), || async {
        !fires().await.is_empty()
    })
    .await;
    let patched = app
        .patch_json(
            "/v1/schedules/nightly",
            &json!({"template": {"target_version": 2, "soak_seconds": 0,
                "canary": {"count": 0}, "acknowledge": [INDEX_RULE]}}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let fired = wait_until(Duration::from_secs(20), || async {
        fires().await.iter().any(|f| f.0 == "fired")
    })
    .await;

    assert!(refused, "the schedule never handled a tick");
    let (outcome, detail, wave) = fires().await[0].clone();
    assert_eq!(outcome, "failed", "{detail}");
    assert!(detail.contains("lint_failed"), "{detail}");
    assert!(
        detail.contains(INDEX_RULE) && detail.contains("V2__email_index.sql"),
        "{detail}"
    );
    assert_eq!(wave, None);
    assert!(
        fired,
        "the acknowledged template never fired: {:?}",
        fires().await
    );
    let all = fires().await;
    let started = all.iter().find(|f| f.0 == "fired").unwrap();
    let w = app
        .wait_for_wave_state(&started.2.unwrap().to_string(), &["completed"])
        .await;
    assert_eq!(w["plan"]["lint"]["acknowledged"][0]["rule"], INDEX_RULE);
    let waves: i64 = db
        .query_one(
            "SELECT count(*) AS n FROM control_plane.waves WHERE created_by = 'schedule:nightly'",
            &[],
        )
        .await
        .unwrap()
        .get("n");
    let fired_rows = all.iter().filter(|f| f.0 == "fired").count() as i64;
    assert_eq!(
        waves, fired_rows,
        "only the acknowledged ticks started waves"
    );
}
