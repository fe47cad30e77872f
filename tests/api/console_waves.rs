//! The console's wave, schedule and webhook pages (`/ui/waves`, `/ui/waves/{id}`,
//! `/ui/schedules`, `/ui/webhooks`): actions over plain HTTP with a session cookie, then
//! the pages in a real headless Chromium.

use std::time::Duration;

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::console::{csrf_of, get_page, login, post_form};
use crate::helpers::{
    counted_migrations, register_tenants, start_wave, wait_until, wait_wave, wave_app,
    wave_timeline, MigrationsDir, SecretsDir, TestApp, ADMIN_TOKEN, WAVE_DONE,
};

/// The counted migrations with `sleep` seconds in V2 and V3: a wave that takes a while.
fn slow_migrations(sleep: f64) -> MigrationsDir {
    let files = counted_migrations(sleep);
    MigrationsDir::new(
        &files
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str()))
            .collect::<Vec<_>>(),
    )
}

async fn wave_state(app: &TestApp, id: &str) -> String {
    let w: Value = app.get_json(&format!("/v1/waves/{id}")).await;
    w["state"].as_str().unwrap().to_string()
}

/// A wave over `n` tenants paused through the API right after it started.
async fn paused_wave(app: &TestApp, secrets: &SecretsDir, prefix: &str, n: usize) -> String {
    register_tenants(app, secrets, prefix, n, 0).await;
    let id = start_wave(app, json!({"max_concurrency": 1, "soak_seconds": 0})).await;
    let paused = app
        .req(Method::POST, &format!("/v1/waves/{id}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), StatusCode::OK);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_action_without_the_csrf_token_is_refused_and_the_wave_stays_as_it_was() {
    let (migrations, secrets) = (slow_migrations(0.2), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let id = paused_wave(&app, &secrets, "cs", 3).await;
    let operator = app.issue_token("ops", "operator").await;
    let cookie = login(&app, &operator).await;

    let without = post_form(&app, &cookie, &format!("/ui/waves/{id}/resume"), &[]).await;
    let wrong = post_form(
        &app,
        &cookie,
        &format!("/ui/waves/{id}/resume"),
        &[("csrf", &"0".repeat(64))],
    )
    .await;

    assert_eq!(without.status(), StatusCode::FORBIDDEN);
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(wave_state(&app, &id).await, "paused");
    let types: Vec<String> = wave_timeline(&app, &id)
        .await
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    assert!(!types.contains(&"resumed".to_string()), "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_from_the_page_asks_first_then_aborts_as_the_sessions_token() {
    let (migrations, secrets) = (slow_migrations(0.2), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let id = paused_wave(&app, &secrets, "ab", 3).await;
    let operator = app.issue_token("release", "operator").await;
    let cookie = login(&app, &operator).await;
    let (status, page) = get_page(&app, &cookie, &format!("/ui/waves/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(&format!("action=\"/ui/waves/{id}/abort\" data-confirm=")));
    let csrf = csrf_of(&page);

    let asked = post_form(
        &app,
        &cookie,
        &format!("/ui/waves/{id}/abort"),
        &[("csrf", &csrf)],
    )
    .await;
    let asked_status = asked.status();
    let question = asked.text().await.unwrap();
    let still = wave_state(&app, &id).await;
    let done = post_form(
        &app,
        &cookie,
        &format!("/ui/waves/{id}/abort"),
        &[("csrf", &csrf), ("confirmed", "yes")],
    )
    .await;

    assert_eq!(asked_status, StatusCode::OK);
    assert!(
        question.contains("name=\"confirmed\" value=\"yes\""),
        "{question}"
    );
    assert_eq!(still, "paused", "nothing happens before the answer");
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        done.headers()[LOCATION],
        format!("/ui/waves/{id}?done=abort").as_str()
    );
    assert_eq!(wave_state(&app, &id).await, "aborted");
    let (kind, actor, _) = wave_timeline(&app, &id).await.pop().unwrap();
    assert_eq!(
        (kind.as_str(), actor.as_str()),
        ("aborted", "token:release")
    );
    let (_, after) = get_page(&app, &cookie, &format!("/ui/waves/{id}?done=abort")).await;
    assert!(after.contains("role=\"status\""), "{after}");
    assert!(
        !after.contains("data-stream="),
        "a finished wave holds no stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_the_waves_state_does_not_allow_shows_the_refusal_not_a_server_error() {
    let (migrations, secrets) = (slow_migrations(0.0), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    register_tenants(&app, &secrets, "il", 2, 0).await;
    let id = start_wave(&app, json!({"soak_seconds": 0})).await;
    wait_wave(&app.base(), &id, WAVE_DONE, Duration::from_secs(60)).await;
    let cookie = login(&app, ADMIN_TOKEN).await;
    let (_, page) = get_page(&app, &cookie, &format!("/ui/waves/{id}")).await;

    let resp = post_form(
        &app,
        &cookie,
        &format!("/ui/waves/{id}/pause"),
        &[("csrf", &csrf_of(&page))],
    )
    .await;

    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("cannot pause wave") && body.contains("completed"),
        "{body}"
    );
    assert!(body.contains("role=\"alert\""), "{body}");
    assert_eq!(wave_state(&app, &id).await, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wave_pages_show_state_progress_and_failures_grouped_with_their_tenants() {
    let (migrations, secrets) = (slow_migrations(0.0), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = register_tenants(&app, &secrets, "fl", 4, 1).await;
    crate::helpers::plant_widgets_clash(&tenants[2].url).await;
    crate::helpers::plant_widgets_clash(&tenants[3].url).await;
    let id = start_wave(
        &app,
        json!({"soak_seconds": 0, "batch_size": 2, "max_failures": 5}),
    )
    .await;
    wait_wave(&app.base(), &id, WAVE_DONE, Duration::from_secs(60)).await;
    let viewer = app.issue_token("watcher", "viewer").await;
    let cookie = login(&app, &viewer).await;

    let (list_status, list) = get_page(&app, &cookie, "/ui/waves").await;
    let (wave_status, wave) = get_page(&app, &cookie, &format!("/ui/waves/{id}")).await;
    let (frag_status, fragment) =
        get_page(&app, &cookie, &format!("/ui/waves/{id}/progress")).await;

    assert_eq!(list_status, StatusCode::OK);
    assert!(list.contains(&format!("href=\"/ui/waves/{id}\"")), "{list}");
    assert!(
        list.contains(">completed</span>"),
        "state as a word: {list}"
    );
    assert!(list.contains("4 / 4"), "{list}");
    assert_eq!(wave_status, StatusCode::OK);
    for part in [
        "canary",
        "batch 1",
        "batch 2",
        "Timeline",
        "created",
        "completed",
    ] {
        assert!(wave.contains(part), "{part}: {wave}");
    }
    assert!(wave.contains("2 tenants failed, by error"), "{wave}");
    assert!(wave.contains("42P07"), "{wave}");
    assert!(wave.contains("href=\"/ui/tenants/fl-002\""), "{wave}");
    assert!(wave.contains("href=\"/ui/tenants/fl-003\""), "{wave}");
    assert!(
        !wave.contains("<button type=\"submit\">"),
        "a viewer gets no actions"
    );
    assert!(!wave.contains("/abort"), "a viewer gets no actions");
    let assets = drover::console::assets::total_bytes();
    eprintln!(
        "wave page weight: {} bytes of HTML + {assets} bytes of script and stylesheet",
        wave.len()
    );
    assert!(
        wave.len() + assets < 150 * 1024,
        "the page weighs under 150 KB"
    );
    assert_eq!(frag_status, StatusCode::OK);
    assert!(fragment.starts_with("<div id=\"wave-live\">"), "{fragment}");
    assert!(!fragment.contains("<html"), "a fragment, not a page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_cannot_act_on_a_wave_even_with_a_valid_form() {
    let (migrations, secrets) = (slow_migrations(0.2), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let id = paused_wave(&app, &secrets, "vw", 2).await;
    let viewer = app.issue_token("watcher", "viewer").await;
    let cookie = login(&app, &viewer).await;
    let (_, page) = get_page(&app, &cookie, &format!("/ui/waves/{id}")).await;

    let resp = post_form(
        &app,
        &cookie,
        &format!("/ui/waves/{id}/resume"),
        &[("csrf", &csrf_of(&page))],
    )
    .await;

    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(!page.contains("/resume"), "no Resume button for a viewer");
    assert_eq!(wave_state(&app, &id).await, "paused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedules_page_shows_next_fires_in_the_schedules_zone_and_the_last_fire() {
    let (migrations, secrets) = (slow_migrations(0.0), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    register_tenants(&app, &secrets, "sc", 1, 0).await;
    let made = app
        .req(Method::POST, "/v1/schedules")
        .json(
            &json!({"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
                      "template": {"soak_seconds": 0}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let fired = app
        .req(Method::POST, "/v1/schedules/nightly/trigger")
        .send()
        .await
        .unwrap();
    assert!(
        fired.status().is_success(),
        "{}",
        fired.text().await.unwrap()
    );
    let cookie = login(&app, ADMIN_TOKEN).await;

    let (status, page) = get_page(&app, &cookie, "/ui/schedules").await;

    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("30 2 * * *") && page.contains("Europe/Berlin"),
        "{page}"
    );
    assert!(page.contains(">enabled</span>"), "{page}");
    let local = page.matches(" 02:30 CE").count();
    assert_eq!(local, 5, "five next fires at 02:30 Berlin time: {page}");
    assert!(page.contains(">fired</span>"), "the last fire: {page}");
    assert!(page.contains("href=\"/ui/waves/"), "its wave: {page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhooks_page_shows_delivery_state_and_failures_without_the_urls_secrets() {
    let (migrations, secrets) = (slow_migrations(0.0), SecretsDir::new());
    secrets.put("webhooks/key", "k");
    let app = wave_app(
        &migrations,
        &secrets,
        &[("DROVER_WEBHOOK_RETRY_BACKOFF", "1h")],
    )
    .await;
    let made = app
        .req(Method::POST, "/v1/webhooks")
        .json(&json!({"name": "ops", "url": "http://127.0.0.1:9/in/T0000/XXXXsecretpathtoken42?token=s3cret",
                      "events": ["tenant.*"], "secret_ref": "file:webhooks/key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    register_tenants(&app, &secrets, "wh", 1, 0).await;
    let cookie = login(&app, ADMIN_TOKEN).await;

    let failing = wait_until(Duration::from_secs(30), || async {
        get_page(&app, &cookie, "/ui/webhooks")
            .await
            .1
            .contains(">retrying</span>")
    })
    .await;
    let (status, page) = get_page(&app, &cookie, "/ui/webhooks").await;

    assert!(failing, "the delivery to a closed port fails: {page}");
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("http://127.0.0.1:9/in/T0000/XXXX…?…"),
        "{page}"
    );
    for secret in ["secretpathtoken", "s3cret", "webhooks/key"] {
        assert!(!page.contains(secret), "{secret} shown: {page}");
    }
    assert!(page.contains("tenant.created"), "{page}");
    assert!(
        !page.contains("none pending"),
        "an oldest pending age: {page}"
    );
}
