//! The task supervisor inside a real daemon: a background task that panics is counted in
//! `/metrics`, named by `/readyz` and restarted, and a critical task that fails stops the
//! daemon with an error naming it. The faulty tasks are the test's own, added to the
//! daemon's supervisor beside its tasks (`TestAppBuilder::tasks`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drover::tasks::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{wait_until, TestApp};

#[tokio::test]
async fn a_background_task_that_panics_is_counted_named_by_readyz_and_restarted() {
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let app = TestApp::builder()
        .tasks(move |tasks| {
            tasks.spawn("test-fault", Policy::Restart, move |shutdown| {
                let run = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if run == 0 {
                        panic!("injected fault");
                    }
                    shutdown.cancelled().await;
                }
            })
        })
        .spawn()
        .await;

    let restarted = wait_until(Duration::from_secs(15), || async {
        runs.load(Ordering::SeqCst) >= 2
    })
    .await;
    let ready = app.get_without_token("/readyz").await;
    let status = ready.status();
    let body: Value = ready.json().await.unwrap();
    let failures = app
        .metric("drover_task_failures_total{task=\"test-fault\"}")
        .await;
    let exposition = app.metrics_text().await;
    app.stop().await;

    assert!(restarted, "the task ran again after its panic");
    assert_eq!(
        status,
        StatusCode::OK,
        "a failing task does not make the replica unready"
    );
    assert_eq!(
        body["failing_tasks"],
        json!([{"task": "test-fault", "failures": 1, "last_failure": "panicked: injected fault"}]),
        "{body:#}"
    );
    assert_eq!(failures, 1.0);
    for task in [
        "http",
        "wave-worker",
        "webhook-worker",
        "leader",
        "fleet-gauges",
    ] {
        assert!(
            exposition.contains(&format!("drover_task_failures_total{{task=\"{task}\"}} 0")),
            "every task has its series from the start: {task}"
        );
    }
}

#[tokio::test]
async fn a_critical_task_that_fails_stops_the_daemon_with_an_error_naming_it() {
    let app = TestApp::builder()
        .tasks(|tasks| {
            tasks.spawn("test-critical", Policy::Critical, |_shutdown| async {
                Err::<(), _>("injected failure")
            })
        })
        .spawn()
        .await;
    let addr = app.addr;

    let ended = app.stopped_by_itself().await;
    let refused = reqwest::get(format!("http://{addr}/healthz")).await;

    let error = ended.expect_err("the daemon ends with an error");
    assert_eq!(
        error.to_string(),
        "task test-critical failed: injected failure; the daemon stopped"
    );
    assert!(refused.is_err(), "the HTTP server stopped too");
}
