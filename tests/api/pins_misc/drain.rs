//! Stopping the daemon with a request in flight: the request is answered in full, the
//! daemon refuses new connections meanwhile, and it stops only after the answer.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{connect, spawn_app, tenant_body, wait_until};

// Pins: a stop that drops in-flight requests (the HTTP task aborted, or the control pool
// closed before the server drained), and one that keeps accepting new connections while
// it drains. The request is held in the daemon by a lock on the tenants table, so it is
// certainly in flight when the stop begins, and released only once the stop is under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_daemon_stops_is_answered_in_full_before_it_exits() {
    let app = spawn_app().await;
    assert_eq!(
        app.create_tenant(&tenant_body("acme")).await.status(),
        StatusCode::CREATED
    );
    let locker = connect(&app.database_url).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE control_plane.tenants IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let api = (*app).clone();
    let held = tokio::spawn(async move {
        let resp = api.get("/v1/tenants").await;
        (resp.status(), resp.text().await)
    });
    let waiting = wait_until(Duration::from_secs(10), || async {
        locker
            .query_one(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE '%control_plane.tenants%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>("n")
            > 0
    })
    .await;
    assert!(waiting, "the listing never reached the lock");

    let addr = app.addr;
    let stopping = tokio::spawn(app.stop());
    let refusing = wait_until(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    let in_flight = !held.is_finished() && !stopping.is_finished();
    locker.batch_execute("COMMIT").await.unwrap();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the held request was answered")
        .unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(10), stopping).await;

    assert!(
        refusing,
        "new connections were still accepted while draining"
    );
    assert!(
        in_flight,
        "the request and the stop were both still running"
    );
    assert_eq!(status, StatusCode::OK);
    let page: Value = serde_json::from_str(&body.expect("the whole body arrived")).unwrap();
    assert_eq!(page["items"][0]["slug"], "acme", "{page}");
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the daemon stopped cleanly after the answer"
    );
}
