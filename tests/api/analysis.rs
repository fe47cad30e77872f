//! Canary analysis: sql checks on the canary databases and PromQL checks against a real
//! Prometheus scraping drover decide, during the soak, whether the batches start; and an
//! operator can promote a soaking wave by hand.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    connect, counted_migrations_dir, drover_cmd, free_port, history, tool, wait_until, wave_app,
    MigrationsDir, Prometheus, SecretsDir, TenantDb, TestApp, ADMIN_TOKEN, WAVE_DONE,
};

/// A `health` table in a tenant database holding one row.
async fn plant_health(t: &TenantDb, ok: bool) {
    connect(&t.url)
        .await
        .batch_execute(&format!(
            "CREATE TABLE health (ok boolean); INSERT INTO health VALUES ({ok})"
        ))
        .await
        .unwrap();
}

fn evaluations(wave: &Value) -> Vec<Value> {
    wave["analysis"]["evaluations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn untouched(tenants: &[TenantDb]) {
    for t in tenants {
        assert!(
            history(&t.url).await.is_empty(),
            "batch tenant {} was touched",
            t.slug
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_check_failing_on_a_canary_halts_the_wave_before_any_batch_tenant_is_touched() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "sq", 5, 2).await;
    plant_health(&tenants[0], true).await;
    plant_health(&tenants[1], false).await;

    let id = app.start_wave(json!({"soak_seconds": 2, "batch_size": 2, "analysis": [
            {"name": "healthy", "type": "sql", "query": "SELECT ok FROM health", "interval_seconds": 1}
        ]}),
    )
    .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(wave["state"], "halted", "{wave:#}");
    let reason = wave["halt_reason"].as_str().unwrap();
    assert!(
        reason.contains("healthy") && reason.contains("sq-001: false"),
        "{reason}"
    );
    let seen: Vec<(String, String, String)> = evaluations(&wave)
        .iter()
        .map(|e| {
            (
                e["tenant"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
                e["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        seen.contains(&("sq-000".into(), "true".into(), "pass".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("sq-001".into(), "false".into(), "fail".into())),
        "{seen:?}"
    );
    assert!(evaluations(&wave)
        .iter()
        .all(|e| e["at"].is_string() && e["check"] == "healthy"));
    untouched(&tenants[2..]).await;
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(
            r#"drover_analysis_evaluations_total{check="healthy",type="sql",verdict="fail"} "#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("sq-00"), "no tenant in a label");
    let (server, wave_id) = (app.base(), id.clone());
    let shown = tokio::task::spawn_blocking(move || {
        drover_cmd()
            .env("DROVER_SERVER", server)
            .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
            .args(["waves", "show", &wave_id])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert_eq!(
        shown.status.code(),
        Some(1),
        "a halted wave shows with exit 1"
    );
    assert!(
        stdout.contains("analysis check healthy failed")
            && stdout
                .lines()
                .any(|l| l.contains("sq-001") && l.contains("fail")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_check_cannot_write_its_error_is_inconclusive_and_pauses_the_wave_until_promoted() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "ro", 3, 1).await;
    plant_health(&tenants[0], true).await;

    let id = app
        .start_wave(json!({"soak_seconds": 30, "analysis": [{
            "name": "sneaky", "type": "sql", "interval_seconds": 1,
            "query": "WITH gone AS (DELETE FROM health RETURNING 1) SELECT count(*) > 0 FROM gone"
        }]}))
        .await;
    let wave = app
        .wait_for_wave_state(&id, &["paused", "halted", "completed"])
        .await;

    assert_eq!(wave["state"], "paused", "{wave:#}");
    let reason = wave["halt_reason"].as_str().unwrap();
    assert!(
        reason.contains("sneaky") && reason.contains("25006 read_only_sql_transaction"),
        "{reason}"
    );
    assert_eq!(evaluations(&wave)[0]["verdict"], "inconclusive");
    let rows: i64 = connect(&tenants[0].url)
        .await
        .query_one("SELECT count(*) FROM health", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "the check deleted a row");
    untouched(&tenants[1..]).await;

    // Resume soaks again from zero, and the same check pauses it again.
    let resumed: Value = app.resume_wave(&id).await.json().await.unwrap();
    assert_eq!(resumed["state"], "soaking", "{resumed:#}");
    assert_eq!(resumed["analysis"]["checks"][0]["runs"], 0);
    let again = app
        .wait_for_wave_state(&id, &["paused", "halted", "completed"])
        .await;
    assert_eq!(again["state"], "paused", "{again:#}");
    assert!(
        again["analysis"]["evaluations_total"].as_i64()
            > wave["analysis"]["evaluations_total"].as_i64()
    );

    let promoted = app
        .req(Method::POST, &format!("/v1/waves/{id}/promote"))
        .header("X-Drover-Actor", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(promoted.status(), StatusCode::OK);
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    assert_eq!(wave["state"], "completed", "{wave:#}");
    // The header never replaces the token's identity.
    assert_eq!(wave["promoted_by"], "root");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_a_soaking_wave_by_hand_starts_the_batches_at_once() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "pr", 4, 1).await;
    let id = app
        .start_wave(json!({"soak_seconds": 3600, "batch_size": 2}))
        .await;
    app.wait_for_wave_state(&id, &["soaking"]).await;
    let early = app.promote_wave(&id).await;
    assert_eq!(early.status(), StatusCode::OK);
    let again = app.promote_wave(&id).await;

    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    let promoted: Value = early.json().await.unwrap();
    assert_eq!(promoted["state"], "rolling", "{promoted:#}");
    assert_eq!(promoted["current_phase"], 1);
    assert_eq!(promoted["promoted_by"], "root");
    assert!(promoted["promoted_at"].is_string());
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "only a soaking wave is promoted"
    );
    assert_eq!(wave["state"], "completed", "{wave:#}");
    for t in &tenants {
        assert_eq!(history(&t.url).await, vec![1, 2, 3], "{}", t.slug);
    }
}

/// A daemon whose `prometheus_url` points at a real Prometheus scraping it.
async fn app_scraped_by_prometheus(
    migrations: &MigrationsDir,
    secrets: &SecretsDir,
) -> Option<(TestApp, Prometheus)> {
    let binary = tool("prometheus")?;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let app = wave_app(migrations, secrets, &[("DROVER_PROMETHEUS_URL", &url)]).await;
    let prom = Prometheus::start(&binary, port, app.addr);
    assert!(
        prom.wait_scraped(2).await,
        "Prometheus never scraped drover"
    );
    Some((app, prom))
}

fn prometheus_check(name: &str, condition: &str, inconclusive_limit: i32) -> Value {
    json!({
        "name": name, "type": "prometheus", "interval_seconds": 1,
        "query": "sum(drover_migrations_failed_total)",
        "success_condition": condition, "inconclusive_limit": inconclusive_limit,
    })
}

fn selecting(tenants: &[TenantDb]) -> Value {
    json!(tenants.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_check_that_holds_lets_the_wave_through_and_one_that_does_not_halts_it() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let Some((app, _prom)) = app_scraped_by_prometheus(&migrations, &secrets).await else {
        return;
    };
    let passing = app.register_tenants(&secrets, "pp", 3, 1).await;
    let failing = app.register_tenants(&secrets, "pf", 3, 1).await;

    let through = app
        .start_wave(
            json!({"selector": {"slugs": selecting(&passing)}, "soak_seconds": 2,
               "analysis": [prometheus_check("no-failures", "result == 0", 0)]}),
        )
        .await;
    let through = app.wait_for_wave_state(&through, WAVE_DONE).await;
    let stopped = app
        .start_wave(
            json!({"selector": {"slugs": selecting(&failing)}, "soak_seconds": 2,
               "analysis": [prometheus_check("some-failures", "result > 0", 0)]}),
        )
        .await;
    let stopped = app.wait_for_wave_state(&stopped, WAVE_DONE).await;

    assert_eq!(through["state"], "completed", "{through:#}");
    let passed = evaluations(&through);
    assert!(!passed.is_empty());
    assert!(
        passed
            .iter()
            .all(|e| e["verdict"] == "pass" && e["value"] == "0"),
        "{passed:?}"
    );
    for t in &passing {
        assert_eq!(history(&t.url).await, vec![1, 2, 3]);
    }
    assert_eq!(stopped["state"], "halted", "{stopped:#}");
    let reason = stopped["halt_reason"].as_str().unwrap();
    assert!(
        reason.contains("some-failures") && reason.contains("0 at"),
        "{reason}"
    );
    assert_eq!(evaluations(&stopped)[0]["verdict"], "fail");
    untouched(&failing[1..]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stopped_mid_soak_makes_the_check_inconclusive_and_pauses_the_wave() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let Some((app, mut prom)) = app_scraped_by_prometheus(&migrations, &secrets).await else {
        return;
    };
    let tenants = app.register_tenants(&secrets, "po", 3, 1).await;
    let id = app.start_wave(json!({"soak_seconds": 120, "analysis": [prometheus_check("no-failures", "result == 0", 1)]}),
    )
    .await;
    let passed_once = wait_until(Duration::from_secs(60), || async {
        let w = app.get_wave(&id).await;
        evaluations(&w).iter().any(|e| e["verdict"] == "pass")
    })
    .await;
    assert!(passed_once, "the check never passed while Prometheus ran");

    prom.kill();
    let wave = app
        .wait_for_wave_state(&id, &["paused", "halted", "completed"])
        .await;

    assert_eq!(wave["state"], "paused", "{wave:#}");
    let reason = wave["halt_reason"].as_str().unwrap();
    assert!(
        reason.contains("no-failures") && reason.contains("inconclusive"),
        "{reason}"
    );
    let seen = evaluations(&wave);
    let inconclusive: Vec<&Value> = seen
        .iter()
        .filter(|e| e["verdict"] == "inconclusive")
        .collect();
    assert!(inconclusive.len() >= 2, "{wave:#}");
    assert!(
        inconclusive[0]["detail"]
            .as_str()
            .unwrap()
            .contains("cannot connect to Prometheus"),
        "{wave:#}"
    );
    assert_eq!(wave["analysis"]["checks"][0]["inconclusives"], 2);
    untouched(&tenants[1..]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_condition_other_than_result_op_number_is_refused_with_422() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(
        &migrations,
        &secrets,
        &[("DROVER_PROMETHEUS_URL", "http://127.0.0.1:9")],
    )
    .await;
    app.register_tenants(&secrets, "cd", 2, 1).await;

    let bad = app
        .create_wave(&json!({"analysis": [prometheus_check("rate", "rate(x) < 1", 0)]}))
        .await;
    let no_canary = app
        .create_wave(&json!({"selector": {"slugs": ["cd-001"]},
                      "analysis": [{"name": "ok", "type": "sql", "query": "SELECT true"}]}))
        .await;

    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["field"], "analysis");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("result <op> <number>"), "{message}");
    assert_eq!(no_canary.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = no_canary.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("canar"),
        "{body}"
    );
}
