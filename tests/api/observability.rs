//! `/metrics` checked by `promtool`, and every dashboard expression evaluated by a real
//! Prometheus that scraped a drover which ran a wave and served resolutions.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    counted_migrations, free_port, tool, wait_until, MigrationsDir, Prometheus, SecretsDir,
    TestApp, ADMIN_TOKEN,
};

const RESOLVER_TOKEN: &str = "test-resolver-token-0123456789abcdef";

/// Every PromQL expression of every panel, and every label_values() template query.
fn dashboard_queries() -> Vec<(String, String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for panel in d["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().unwrap() {
                out.push((
                    name.clone(),
                    panel["title"].as_str().unwrap().to_string(),
                    t["expr"].as_str().unwrap().to_string(),
                ));
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if let Some(q) = v["query"]["query"].as_str() {
                out.push((
                    name.clone(),
                    format!("variable {}", v["name"]),
                    q.to_string(),
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_metrics_and_every_dashboard_expression_returns_data_from_a_real_prometheus(
) {
    let (Some(promtool), Some(prometheus)) = (tool("promtool"), tool("prometheus")) else {
        return;
    };
    let files = counted_migrations(0.0);
    let m = MigrationsDir::owned(&files);
    let secrets = SecretsDir::new();
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_MIGRATIONS_DIR", m.path()),
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_RESOLVER_TOKEN", RESOLVER_TOKEN),
        ])
        .spawn()
        .await;
    app.register_tenants(&secrets, "obs", 3, 1).await;
    let id = app.start_wave(json!({"soak_seconds": 0})).await;
    app.wait_for_wave_state(&id, &["completed"]).await;
    for slug in ["obs-000", "obs-001", "nobody"] {
        app.with_token(RESOLVER_TOKEN).resolve(slug).await;
    }
    app.create_schedule(&json!({"name": "nightly", "cron": "0 3 * * *"}))
        .await;
    // The fleet gauges are a snapshot refreshed in the background: once the schedule shows,
    // the refresh came after the wave and the schedule, so every gauge has its series.
    wait_until(Duration::from_secs(15), || async {
        app.metrics_text()
            .await
            .contains("drover_schedule_next_fire_timestamp_seconds{schedule=\"nightly\"}")
    })
    .await;
    let exposition = app.metrics_text().await;

    // promtool reads the exposition on stdin.
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), exposition.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        !exposition.contains("obs-0"),
        "no tenant appears in a label"
    );

    let prom = Prometheus::start(&prometheus, free_port(), app.addr);
    let api = format!("{}/api/v1", prom.url());
    assert!(
        prom.wait_scraped(3).await,
        "Prometheus never scraped drover"
    );

    let mut failures = Vec::new();
    for (dashboard, panel, expr) in dashboard_queries() {
        let empty = if let Some(rest) = expr.strip_prefix("label_values(") {
            let (metric, label) = rest.trim_end_matches(')').split_once(',').unwrap();
            let r: Value = reqwest::Client::new()
                .get(format!("{api}/label/{}/values", label.trim()))
                .query(&[("match[]", metric.trim())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["status"] != "success" || r["data"].as_array().is_none_or(|a| a.is_empty())
        } else {
            match prom.query(&expr).await {
                Some(r) => {
                    r["status"] != "success"
                        || r["data"]["result"].as_array().is_none_or(|a| a.is_empty())
                }
                None => true,
            }
        };
        if empty {
            failures.push(format!("{dashboard} / {panel}: {expr}"));
        }
    }
    drop(prom);
    assert!(
        failures.is_empty(),
        "expressions without data:\n{}",
        failures.join("\n")
    );
    let _ = ADMIN_TOKEN;
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards");

    let check = Command::new(&promtool)
        .args(["check", "rules", "alerts.yml"])
        .current_dir(dir)
        .output()
        .unwrap();
    let test = Command::new(&promtool)
        .args(["test", "rules", "alerts_test.yml"])
        .current_dir(dir)
        .output()
        .unwrap();

    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}
