//! The console's wave, schedule and webhook pages (`/ui/waves`, `/ui/waves/{id}`,
//! `/ui/schedules`, `/ui/webhooks`): actions over plain HTTP with a session cookie, then
//! the pages in a real headless Chromium.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{browser_login, csrf_of, get_page, login, post_form};
use crate::browser::Browser;
use crate::helpers::{
    counted_migrations, wait_until, wave_app, MigrationsDir, SecretsDir, TestApp, ADMIN_TOKEN,
    WAVE_DONE,
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
    app.register_tenants(secrets, prefix, n, 0).await;
    let id = app
        .start_wave(json!({"max_concurrency": 1, "soak_seconds": 0}))
        .await;
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
    let types: Vec<String> = app
        .wave_events(&id)
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
    let (kind, actor, _) = app.wave_events(&id).await.pop().unwrap();
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
    app.register_tenants(&secrets, "il", 2, 0).await;
    let id = app.start_wave(json!({"soak_seconds": 0})).await;
    app.wait_for_wave_state_within(&id, WAVE_DONE, Duration::from_secs(60))
        .await;
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
    let tenants = app.register_tenants(&secrets, "fl", 4, 1).await;
    crate::helpers::plant_widgets_clash(&tenants[2].url).await;
    crate::helpers::plant_widgets_clash(&tenants[3].url).await;
    let id = app
        .start_wave(json!({"soak_seconds": 0, "batch_size": 2, "max_failures": 5}))
        .await;
    app.wait_for_wave_state_within(&id, WAVE_DONE, Duration::from_secs(60))
        .await;
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
    app.register_tenants(&secrets, "sc", 1, 0).await;
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
    app.register_tenants(&secrets, "wh", 1, 0).await;
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

// ---- In a real browser ----------------------------------------------------------------

/// The text of the first element matching `css` once `ok` holds for it, or the last text
/// seen when `timeout` passes first.
async fn wait_text(b: &Browser, css: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = match b.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ok(&text) || Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of `css` inside the live section, read again if the script replaced the
/// element between finding and reading it.
async fn live_text(b: &Browser, css: &str) -> String {
    wait_text(b, css, crate::browser::WAIT, |t| !t.is_empty()).await
}

/// Clicks `css`, finding it again if the script replaced it meanwhile (the live section
/// is re-drawn whenever the wave moves).
async fn click(b: &Browser, css: &str) {
    let deadline = Instant::now() + crate::browser::WAIT;
    loop {
        let why = match b.client.find(Locator::Css(css)).await {
            Ok(e) => match e.click().await {
                Ok(_) => return,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        assert!(Instant::now() < deadline, "could not click {css}: {why}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_wave_page_follows_the_wave_live_until_it_completes_without_a_reload() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let (migrations, secrets) = (slow_migrations(0.5), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "lv", 4, 1).await;
    browser_login(&b, &app, ADMIN_TOKEN).await;
    let id = app
        .start_wave(json!({"soak_seconds": 0, "batch_size": 2, "max_concurrency": 1}))
        .await;
    b.open(
        &format!("{}/ui/waves/{id}", app.base()),
        "#wave-live .state",
    )
    .await;
    let at_open = live_text(&b, "#wave-live .state").await;
    b.client
        .execute("window.droverMarker = 'this page'; return null;", vec![])
        .await
        .unwrap();

    let text = wait_text(&b, "#wave-live", Duration::from_secs(90), |t| {
        t.contains("completed") && t.contains("4 succeeded") && t.contains("4 / 4")
    })
    .await;
    let marker = b
        .client
        .execute("return window.droverMarker || null;", vec![])
        .await
        .unwrap();

    assert_ne!(
        at_open, "completed",
        "the page was opened while the wave ran"
    );
    assert!(
        text.contains("completed") && text.contains("4 / 4"),
        "the page never showed the wave completed: {text}"
    );
    assert_eq!(marker, json!("this page"), "no reload happened");
    assert_eq!(wave_state(&app, &id).await, "completed");
    b.screenshot("wave").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_pause_on_the_wave_page_pauses_the_wave_as_the_logged_in_token() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let (migrations, secrets) = (slow_migrations(1.0), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "pz", 6, 0).await;
    let operator = app.issue_token("release", "operator").await;
    browser_login(&b, &app, &operator).await;
    let id = app
        .start_wave(json!({"soak_seconds": 0, "max_concurrency": 1}))
        .await;
    b.open(
        &format!("{}/ui/waves/{id}", app.base()),
        "#wave-live form[action$='/pause'] button",
    )
    .await;

    click(&b, "#wave-live form[action$='/pause'] button").await;
    let notice = b.wait_for("p.notice").await.text().await.unwrap();

    assert!(notice.starts_with("Paused"), "{notice}");
    assert_eq!(b.path().await, format!("/ui/waves/{id}?done=pause"));
    assert_eq!(wave_state(&app, &id).await, "paused");
    let paused: Vec<String> = app
        .wave_events(&id)
        .await
        .into_iter()
        .filter(|(t, _, _)| t == "paused")
        .map(|(_, actor, _)| actor)
        .collect();
    assert_eq!(paused, vec!["token:release".to_string()]);
    let state = live_text(&b, "#wave-live .state").await;
    assert_eq!(state, "paused");
    b.wait_for("#wave-live form[action$='/resume'] button")
        .await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_viewer_sees_the_wave_pages_without_any_action_button() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let (migrations, secrets) = (slow_migrations(1.0), SecretsDir::new());
    secrets.put("webhooks/key", "k");
    let app = wave_app(
        &migrations,
        &secrets,
        &[("DROVER_WEBHOOK_RETRY_BACKOFF", "1h")],
    )
    .await;
    for (path, body) in [
        (
            "/v1/webhooks",
            json!({"name": "ops-alerts", "url": "http://127.0.0.1:9/hooks/drover",
                   "events": ["wave.*", "tenant.provisioning_failed"], "secret_ref": "file:webhooks/key"}),
        ),
        (
            "/v1/schedules",
            json!({"name": "nightly", "cron": "30 2 * * 1-5", "timezone": "Europe/Berlin",
                   "template": {"soak_seconds": 0}}),
        ),
    ] {
        let resp = app
            .req(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{path}");
    }
    let tenants = app.register_tenants(&secrets, "vw", 5, 1).await;
    crate::helpers::plant_widgets_clash(&tenants[4].url).await;
    let done = app
        .start_wave(json!({"soak_seconds": 0, "max_failures": 3}))
        .await;
    app.wait_for_wave_state_within(&done, WAVE_DONE, Duration::from_secs(90))
        .await;
    // Over the same tenants again: the failed one fails again and the wave halts, a state
    // in which an operator would get Resume and Abort.
    app.register_tenants(&secrets, "vx", 2, 0).await;
    let running = app
        .start_wave(json!({"soak_seconds": 0, "max_concurrency": 1}))
        .await;
    let viewer = app.issue_token("watcher", "viewer").await;
    browser_login(&b, &app, &viewer).await;

    b.open(
        &format!("{}/ui/waves/{running}", app.base()),
        "#wave-live .state",
    )
    .await;
    let buttons = b
        .client
        .find_all(Locator::Css("main button"))
        .await
        .unwrap();
    let state = live_text(&b, "#wave-live .state").await;

    assert!(buttons.is_empty(), "a viewer gets no action buttons");
    assert!(
        !["completed", "aborted"].contains(&state.as_str()),
        "{state}"
    );
    b.open(
        &format!("{}/ui/waves/{done}", app.base()),
        "#wave-live .state",
    )
    .await;
    b.screenshot("wave-with-failures").await;
    b.open(&format!("{}/ui/waves", app.base()), "main table")
        .await;
    b.screenshot("waves").await;
    b.open(
        &format!("{}/ui/schedules", app.base()),
        "main section.panel",
    )
    .await;
    b.screenshot("schedules").await;
    b.open(&format!("{}/ui/webhooks", app.base()), "main section.panel")
        .await;
    b.screenshot("webhooks").await;
    b.close().await;
}
