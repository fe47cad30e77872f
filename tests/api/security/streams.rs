//! Open streams outlive their token: `/v1/events/stream` and `/ui/stream` kept delivering
//! after the token was revoked or expired or the console session logged out, and one
//! viewer could hold every stream slot.

use std::time::{Duration, Instant};

use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::console::{csrf_of, get_page, login, post_form};
use crate::helpers::{fresh_control_database, spawn_app, TestApp};

/// `GET /v1/events/stream` with `token`.
async fn open_stream(app: &TestApp, token: &str) -> reqwest::Response {
    app.req_as(token, Method::GET, "/v1/events/stream")
        .send()
        .await
        .unwrap()
}

/// `GET /ui/stream` with a session cookie.
async fn open_console_stream(app: &TestApp, cookie: &str) -> reqwest::Response {
    app.http
        .get(format!("{}/ui/stream", app.base()))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

/// Reads `stream` until the server ends it; `true` if it did within `limit`.
async fn ends_within(stream: &mut reqwest::Response, limit: Duration) -> bool {
    let drained = async {
        // Heartbeats and events until the end (or a broken connection, which ends it too).
        while let Ok(Some(_)) = stream.chunk().await {}
    };
    tokio::time::timeout(limit, drained).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_replica_ends_its_open_stream_on_another_within_two_seconds() {
    let control = fresh_control_database().await;
    let a = TestApp::builder().control_db(&control).spawn().await;
    let b = TestApp::builder().control_db(&control).spawn().await;
    let token = a.issue_token("dashboard", "viewer").await;
    let mut on_a = open_stream(&a, &token).await;
    let mut on_b = open_stream(&b, &token).await;
    assert_eq!(on_a.status(), StatusCode::OK);
    assert_eq!(on_b.status(), StatusCode::OK);

    let revoked = a.revoke_token("dashboard").await;
    let at = Instant::now();
    let a_ended = ends_within(&mut on_a, Duration::from_secs(5)).await;
    let b_ended = ends_within(&mut on_b, Duration::from_secs(5)).await;
    let took = at.elapsed();

    assert_eq!(revoked.status(), StatusCode::OK);
    assert!(
        a_ended,
        "the revoking replica still streams to a revoked token"
    );
    assert!(b_ended, "another replica still streams to a revoked token");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(
        open_stream(&b, &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_tokens_open_stream_ends_within_two_seconds_of_its_expiry() {
    let app = spawn_app().await;
    let created = Instant::now();
    let short: Value = app
        .create_token("short-lived", "viewer", Some("3s"))
        .await
        .json()
        .await
        .unwrap();
    let token = short["token"].as_str().unwrap();
    let mut stream = open_stream(&app, token).await;
    assert_eq!(stream.status(), StatusCode::OK);

    let ended = ends_within(&mut stream, Duration::from_secs(10)).await;
    let lasted = created.elapsed();

    assert!(ended, "the stream outlived its token's expiry");
    assert!(
        lasted < Duration::from_secs(3 + 2),
        "ended {lasted:?} after the 3 s token was created"
    );
    let again = open_stream(&app, token).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_of_the_console_ends_its_ui_stream_within_two_seconds() {
    let app = spawn_app().await;
    let viewer = app.issue_token("support", "viewer").await;
    let cookie = login(&app, &viewer).await;
    let (_, page) = get_page(&app, &cookie, "/ui/").await;
    let csrf = csrf_of(&page);
    let mut stream = open_console_stream(&app, &cookie).await;
    assert_eq!(stream.status(), StatusCode::OK);

    let out = post_form(&app, &cookie, "/ui/logout", &[("csrf", &csrf)]).await;
    let at = Instant::now();
    let ended = ends_within(&mut stream, Duration::from_secs(5)).await;
    let took = at.elapsed();

    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(ended, "the console stream outlived its session");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_stream_of_one_token_is_refused_with_429_and_its_console_sessions_count_too() {
    let app = spawn_app().await;
    let viewer = app.issue_token("greedy", "viewer").await;
    let other = app.issue_token("modest", "viewer").await;
    let cookie = login(&app, &viewer).await;

    let mut four = Vec::new();
    for _ in 0..4 {
        four.push(open_stream(&app, &viewer).await);
    }
    let fifth = open_stream(&app, &viewer).await;
    let fifth_status = fifth.status();
    // A stream let in never ends: only a refusal has a body to read.
    let fifth_body: Value = match fifth_status {
        StatusCode::OK => Value::Null,
        _ => fifth.json().await.unwrap(),
    };
    let console = open_console_stream(&app, &cookie).await;
    let others = open_stream(&app, &other).await;
    let root = open_stream(&app, crate::helpers::ADMIN_TOKEN).await;
    // One closes: its slot comes back once the server sees the connection go.
    four.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    let reopened = loop {
        let again = open_stream(&app, &viewer).await;
        if again.status() == StatusCode::OK || Instant::now() > deadline {
            break again.status();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert!(four.iter().all(|s| s.status() == StatusCode::OK));
    assert_eq!(fifth_status, StatusCode::TOO_MANY_REQUESTS, "{fifth_body}");
    assert_eq!(fifth_body["error"]["code"], "too_many_streams_for_token");
    let message = fifth_body["error"]["message"].as_str().unwrap();
    assert!(message.contains("stream_max_per_token"), "{message}");
    assert_eq!(
        console.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a console session's stream counts against its login token"
    );
    assert_eq!(
        others.status(),
        StatusCode::OK,
        "another token is not held back"
    );
    assert_eq!(root.status(), StatusCode::OK);
    assert_eq!(
        reopened,
        StatusCode::OK,
        "a closed stream gives its slot back"
    );
}
