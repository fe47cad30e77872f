//! Stopping the daemon with a request in flight: the request is answered in full, the
//! daemon refuses new connections meanwhile, and it stops only after the answer.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{connect, spawn_app, wait_until};

// Pins: a stop that does not wait for in-flight requests (the server future dropped
// instead of shut down gracefully: in `drover serve` the process then exits under the
// request), and one that keeps accepting new connections while it drains. The request is
// held inside the daemon by a lock on the tokens table, which only this request reads (the
// admin token needs no lookup), so it is certainly in flight when the stop begins and
// nothing else the stop waits for is held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_daemon_stops_is_answered_in_full_before_it_exits() {
    let app = spawn_app().await;
    app.issue_token("ci", "viewer").await;
    let locker = connect(&app.database_url).await;
    locker
        .batch_execute("BEGIN; LOCK TABLE control_plane.access_tokens IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let api = (*app).clone();
    let held = tokio::spawn(async move {
        let resp = api.get("/v1/tokens").await;
        (resp.status(), resp.text().await)
    });
    // Watched from another connection: inside the locker's transaction pg_stat_activity
    // would show the snapshot of its first read.
    let watcher = connect(&app.database_url).await;
    let waiting = wait_until(Duration::from_secs(10), || async {
        watcher
            .query_one(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE '%control_plane.access_tokens%' \
                 AND datname = current_database() AND pid <> pg_backend_pid()",
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
    let started = Instant::now();
    let mut stopping = tokio::spawn(app.stop());
    let refusing = wait_until(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    // The bound: a daemon with nothing in flight stops in a fraction of this (printed
    // below), so a stop that does not wait for the request would be over by then.
    let stopped_early = tokio::time::timeout(Duration::from_secs(3), &mut stopping)
        .await
        .is_ok();
    let answered_early = held.is_finished();
    locker.batch_execute("COMMIT").await.unwrap();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the held request was answered")
        .unwrap();
    let stopped = match stopped_early {
        true => None,
        false => Some(tokio::time::timeout(Duration::from_secs(10), stopping).await),
    };
    println!(
        "stopping took {:?} (the request was released after at most 3 s)",
        started.elapsed()
    );

    assert!(
        refusing,
        "new connections were still accepted while draining"
    );
    assert!(
        !stopped_early,
        "the daemon stopped with a request in flight"
    );
    assert!(
        !answered_early,
        "the request was answered before the lock was released"
    );
    assert_eq!(status, StatusCode::OK);
    let page: Value = serde_json::from_str(&body.expect("the whole body arrived")).unwrap();
    assert_eq!(page["items"][0]["name"], "ci", "{page}");
    assert!(
        matches!(stopped, Some(Ok(Ok(())))),
        "the daemon stopped cleanly after the answer"
    );
}

// The bound above, measured: an idle daemon's stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_with_nothing_in_flight_stops_within_a_second() {
    let app = spawn_app().await;

    let started = Instant::now();
    app.stop().await;
    let took = started.elapsed();
    println!("an idle stop took {took:?}");

    assert!(took < Duration::from_secs(1), "an idle stop took {took:?}");
}
