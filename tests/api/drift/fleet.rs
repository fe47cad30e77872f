//! The fleet's schema drift through the API: a wave fingerprints what it migrates, a scan
//! groups hand-changed tenants into cohorts that name exactly what changed, the events
//! and the gauge follow, and a fix resolves it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    connect, wait_until, wave_app, MigrationsDir, SecretsDir, TestApp, WAVE_DONE,
};

/// Two versions with an enum, a partial index, a function and its trigger.
pub const SET: &[(&str, &str)] = &[
    (
        "V1__orders.sql",
        "CREATE TYPE order_status AS ENUM ('new', 'paid');
         CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL,
             status order_status NOT NULL DEFAULT 'new', note text DEFAULT 'none');",
    ),
    (
        "V2__index_and_trigger.sql",
        "CREATE INDEX orders_customer_idx ON orders (customer_id) WHERE status <> 'paid';
         CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := 'touched'; RETURN NEW; END $$;
         CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
         ALTER TYPE order_status ADD VALUE 'shipped';",
    ),
];

/// Runs a scan through the API and waits for it to finish.
pub async fn scan(app: &TestApp) {
    let resp = app.post("/v1/drift/scans").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let scan: Value = resp.json().await.unwrap();
    let path = format!("/v1/drift/scans/{}", scan["id"].as_str().unwrap());
    let finished = wait_until(Duration::from_secs(60), || async {
        let s: Value = app.get_json(&path).await;
        !s["finished_at"].is_null()
    })
    .await;
    assert!(finished, "the scan did not finish");
}

async fn migrate_all(app: &TestApp, body: Value) -> Value {
    let id = app.start_wave(body).await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    assert_eq!(wave["state"], "completed", "{wave:#}");
    wave
}

/// (object, kind) of a cohort's differences.
fn named(cohort: &Value) -> Vec<(String, String)> {
    cohort["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["object"].as_str().unwrap().to_string(),
                d["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hand_changed_tenants_form_four_cohorts_that_name_the_object_and_a_fix_resolves_it() {
    let (migrations, secrets) = (MigrationsDir::new(SET), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "dr", 12, 0).await;
    migrate_all(
        &app,
        json!({"soak_seconds": 0, "batch_size": 12, "max_concurrency": 4}),
    )
    .await;

    // The wave fingerprinted every tenant on its own connection: one cohort, as expected.
    let before: Value = app.get_json("/v1/drift").await;
    assert_eq!(before["reference"], "majority", "{before:#}");
    let cohorts = before["cohorts"].as_array().unwrap();
    assert_eq!(cohorts.len(), 1, "{before:#}");
    assert_eq!(
        (
            cohorts[0]["tenants"].as_i64(),
            cohorts[0]["expected"].as_bool()
        ),
        (Some(12), Some(true))
    );

    let changes = [
        ("ALTER TABLE orders ADD COLUMN legacy_id int", "column public.orders.legacy_id", "extra"),
        ("DROP INDEX orders_customer_idx", "index public.orders_customer_idx", "missing"),
        ("ALTER TABLE orders ALTER COLUMN note SET DEFAULT 'n/a'", "column public.orders.note", "changed"),
        (
            "CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
            "function public.touch()",
            "changed",
        ),
    ];
    for (t, (sql, _, _)) in tenants.iter().zip(changes) {
        connect(&t.url).await.batch_execute(sql).await.unwrap();
    }
    scan(&app).await;

    let report: Value = app.get_json("/v1/drift").await;
    let cohorts = report["cohorts"].as_array().unwrap();
    assert_eq!(cohorts.len(), 5, "{report:#}");
    let reference: Vec<&Value> = cohorts.iter().filter(|c| c["expected"] == true).collect();
    assert_eq!(reference.len(), 1);
    assert_eq!(reference[0]["tenants"], 8);
    assert_eq!(reference[0]["version"], 2);
    for (t, (_, object, kind)) in tenants.iter().zip(changes) {
        let cohort = cohorts
            .iter()
            .find(|c| c["slugs"] == json!([t.slug]))
            .unwrap_or_else(|| panic!("no cohort of {} alone: {report:#}", t.slug));
        assert_eq!(
            named(cohort),
            vec![(object.to_string(), kind.to_string())],
            "{cohort:#}"
        );
        let mine: Value = app.get_json(&format!("/v1/tenants/{}/drift", t.slug)).await;
        assert_eq!(mine["drifted"], true, "{mine:#}");
        assert_eq!(mine["differences"], cohort["differences"]);
        assert!(app
            .event_types(&t.slug)
            .await
            .contains(&"drift_detected".to_string()));
    }
    let untouched: Value = app
        .get_json(&format!("/v1/tenants/{}/drift", tenants[11].slug))
        .await;
    assert_eq!(
        (
            untouched["drifted"].as_bool(),
            untouched["differences"].as_array().map(Vec::len)
        ),
        (Some(false), Some(0))
    );
    assert!(!app
        .event_types(&tenants[11].slug)
        .await
        .contains(&"drift_detected".to_string()));
    let gauge = wait_until(Duration::from_secs(20), || async {
        app.metric("drover_tenants_drifted").await == 4.0
    })
    .await;
    assert!(gauge, "drover_tenants_drifted never read 4");

    // A viewer sees the cohorts and each tenant's differences in the console.
    let viewer = app.issue_token("drift-viewer", "viewer").await;
    let cookie = crate::console::login(&app, &viewer).await;
    let (status, page) = crate::console::get_page(&app, &cookie, "/ui/drift").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for (_, object, _) in changes {
        assert!(page.contains(object), "/ui/drift does not name {object}");
    }
    let tenant_page = format!("/ui/tenants/{}", tenants[1].slug);
    let (_, page) = crate::console::get_page(&app, &cookie, &tenant_page).await;
    assert!(page.contains("Schema drift") && page.contains("index public.orders_customer_idx"));

    // Fixing one by hand and scanning again resolves it, and only it.
    connect(&tenants[0].url)
        .await
        .batch_execute("ALTER TABLE orders DROP COLUMN legacy_id")
        .await
        .unwrap();
    scan(&app).await;
    let after: Value = app.get_json("/v1/drift").await;
    assert_eq!(after["cohorts"].as_array().unwrap().len(), 4, "{after:#}");
    let events = app.event_types(&tenants[0].slug).await;
    assert!(events.contains(&"drift_resolved".to_string()), "{events:?}");
    assert!(!app
        .event_types(&tenants[1].slug)
        .await
        .contains(&"drift_resolved".to_string()));
    let mine: Value = app
        .get_json(&format!("/v1/tenants/{}/drift", tenants[0].slug))
        .await;
    assert_eq!(mine["drifted"], false, "{mine:#}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_with_on_drift_skip_leaves_the_drifted_tenant_untouched_and_migrates_the_others() {
    let (migrations, secrets) = (MigrationsDir::new(SET), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "sk", 4, 0).await;
    migrate_all(&app, json!({"target_version": 1, "soak_seconds": 0})).await;
    connect(&tenants[0].url)
        .await
        .batch_execute("ALTER TABLE orders ADD COLUMN legacy_id int")
        .await
        .unwrap();
    scan(&app).await;

    let wave = migrate_all(
        &app,
        json!({"soak_seconds": 0, "on_drift": "skip", "acknowledge": ["require-concurrent-index-creation"]}),
    )
    .await;
    let id = wave["id"].as_str().unwrap();
    assert_eq!(crate::helpers::history(&tenants[0].url).await, vec![1]);
    for t in &tenants[1..] {
        assert_eq!(
            crate::helpers::history(&t.url).await,
            vec![1, 2],
            "{}",
            t.slug
        );
    }
    let skipped: Vec<Value> = app
        .get_json(&format!("/v1/waves/{id}/targets?state=skipped"))
        .await;
    assert_eq!(skipped.len(), 1, "{skipped:#?}");
    assert_eq!(skipped[0]["slug"], tenants[0].slug.as_str());
    assert!(
        skipped[0]["error"]
            .as_str()
            .unwrap()
            .contains("schema drift"),
        "{skipped:#?}"
    );
    let created = app
        .wave_events(id)
        .await
        .into_iter()
        .find(|(t, _, _)| t == "created")
        .expect("a created event");
    assert_eq!(
        created.2["drifted"],
        json!([tenants[0].slug]),
        "{:#}",
        created.2
    );
    app.stop().await;
}

/// Pins `drift_after_migration = false` being ignored (a wave still fingerprinting, and so
/// still paying a catalog read per tenant) and the default being lost (no fingerprint
/// after a migration until the next scan).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_drift_after_migration_off_a_wave_leaves_fingerprints_to_the_next_scan() {
    let (migrations, secrets) = (MigrationsDir::new(SET), SecretsDir::new());
    let off = wave_app(
        &migrations,
        &secrets,
        &[("DROVER_DRIFT_AFTER_MIGRATION", "false")],
    )
    .await;
    let tenants = off.register_tenants(&secrets, "nf", 2, 0).await;
    let on = wave_app(&migrations, &secrets, &[]).await;
    let others = on.register_tenants(&secrets, "fp", 1, 0).await;
    migrate_all(&off, json!({"target_version": 1, "soak_seconds": 0})).await;
    migrate_all(&on, json!({"target_version": 1, "soak_seconds": 0})).await;

    let before = off
        .get(&format!("/v1/tenants/{}/drift", tenants[0].slug))
        .await;
    assert_eq!(before.status(), StatusCode::NOT_FOUND);
    let by_default: Value = on
        .get_json(&format!("/v1/tenants/{}/drift", others[0].slug))
        .await;
    assert_eq!(by_default["version"], 1, "{by_default:#}");
    scan(&off).await;
    let after: Value = off
        .get_json(&format!("/v1/tenants/{}/drift", tenants[0].slug))
        .await;
    assert_eq!(after["version"], 1, "{after:#}");
    assert_eq!(after["drifted"], false, "{after:#}");
    off.stop().await;
    on.stop().await;
}
