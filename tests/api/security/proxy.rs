//! The console behind a TLS-terminating proxy: `public_url` is the origin a login or a
//! form must come from, `X-Forwarded-*` counts only from a peer in `trusted_proxies`, and
//! a browser logs in and pauses a wave through a real nginx.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::{
    counted_migrations, find_nginx, free_port, spawn_app, wave_app, MigrationsDir, Nginx,
    SecretsDir, TestApp, ADMIN_TOKEN,
};

/// A client that shows redirects instead of following them and keeps no cookies.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `POST /ui/login` with the admin token and these extra headers.
async fn login_with(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = raw_client()
        .post(format!("{}/ui/login", app.base()))
        .form(&[("token", ADMIN_TOKEN), ("next", "/ui/")]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// What a browser sends to `https://drover.example.com` through a proxy that ends TLS.
const THROUGH_THE_PROXY: &[(&str, &str)] = &[
    ("host", "drover.example.com"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-for", "203.0.113.7"),
    ("origin", "https://drover.example.com"),
];

fn set_cookie(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_login_through_a_tls_terminating_proxy_passes_when_public_url_names_its_origin() {
    let app = TestApp::builder()
        .env("DROVER_PUBLIC_URL", "https://drover.example.com")
        .spawn()
        .await;

    let resp = login_with(&app, THROUGH_THE_PROXY).await;

    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&resp);
    assert!(cookie.starts_with("drover_session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_login_through_a_trusted_proxy_passes_with_its_forwarded_scheme_and_host() {
    let app = TestApp::builder()
        .env("DROVER_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1/32")
        .spawn()
        .await;
    let forwarded_host = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "drover.example.com"),
        ("origin", "https://drover.example.com"),
    ];

    let by_host = login_with(&app, THROUGH_THE_PROXY).await;
    let by_forwarded_host = login_with(&app, &forwarded_host).await;

    for resp in [&by_host, &by_forwarded_host] {
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let cookie = set_cookie(resp);
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_forwarded_scheme_and_host_from_an_untrusted_peer_are_ignored() {
    let untrusting = spawn_app().await;
    let elsewhere = TestApp::builder()
        .env("DROVER_TRUSTED_PROXIES", "10.0.0.0/8")
        .spawn()
        .await;
    let forged_host = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "drover.example.com"),
        ("origin", "https://drover.example.com"),
    ];

    for app in [&untrusting, &elsewhere] {
        let own = format!("https://{}", app.addr);
        let forged_scheme = [("x-forwarded-proto", "https"), ("origin", own.as_str())];
        let plain = login_with(app, &[("origin", &format!("http://{}", app.addr))]).await;

        assert_eq!(login_with(app, THROUGH_THE_PROXY).await.status(), 403);
        assert_eq!(login_with(app, &forged_host).await.status(), 403);
        assert_eq!(login_with(app, &forged_scheme).await.status(), 403);
        assert_eq!(plain.status(), StatusCode::SEE_OTHER, "the direct way in");
        assert!(!set_cookie(&plain).contains("Secure"), "plain HTTP");
    }
}

/// `POST /ui/logout` with the session cookie, its CSRF token and these extra headers.
async fn logout_with(
    app: &TestApp,
    cookie: &str,
    csrf: &str,
    headers: &[(&str, &str)],
) -> StatusCode {
    let mut req = raw_client()
        .post(format!("{}/ui/logout", app.base()))
        .header(COOKIE, cookie)
        .form(&[("csrf", csrf)]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_public_url_set_a_login_or_form_from_any_other_origin_is_refused() {
    let app = TestApp::builder()
        .env("DROVER_PUBLIC_URL", "https://drover.example.com/")
        .env("DROVER_TRUSTED_PROXIES", "127.0.0.1")
        .spawn()
        .await;
    let own = format!("http://{}", app.addr);
    let direct = login_with(&app, &[("origin", &own)]).await;
    let through = login_with(&app, THROUGH_THE_PROXY).await;
    assert_eq!(through.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(&through).split(';').next().unwrap().to_string();
    let (_, page) = crate::console::get_page(&app, &cookie, "/ui/").await;
    let csrf = crate::console::csrf_of(&page);

    let from_own_address = logout_with(&app, &cookie, &csrf, &[("origin", &own)]).await;
    let from_forwarded_host = logout_with(
        &app,
        &cookie,
        &csrf,
        &[
            ("x-forwarded-host", "evil.example"),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    let from_public_url = logout_with(
        &app,
        &cookie,
        &csrf,
        &[("origin", "https://drover.example.com")],
    )
    .await;

    assert_eq!(direct.status(), StatusCode::FORBIDDEN);
    assert_eq!(from_own_address, StatusCode::FORBIDDEN);
    assert_eq!(from_forwarded_host, StatusCode::FORBIDDEN);
    assert_eq!(from_public_url, StatusCode::SEE_OTHER);
}

// ---- In a real browser, through a real nginx -------------------------------------------

/// Clicks `css`, finding it again if the page's script replaced it meanwhile.
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
async fn in_a_browser_behind_a_tls_terminating_nginx_an_operator_logs_in_and_pauses_a_wave() {
    let Some(nginx_bin) = find_nginx() else {
        return;
    };
    let Some(b) = Browser::start_with(&["--ignore-certificate-errors"]).await else {
        return;
    };
    let port = free_port();
    let public = format!("https://localhost:{port}");
    let migrations = MigrationsDir::owned(&counted_migrations(1.0));
    let secrets = SecretsDir::new();
    let app = wave_app(
        &migrations,
        &secrets,
        &[
            ("DROVER_PUBLIC_URL", &public),
            ("DROVER_TRUSTED_PROXIES", "127.0.0.1/32, ::1/128"),
        ],
    )
    .await;
    let nginx = Nginx::start(&nginx_bin, port, app.addr).await;
    assert_eq!(nginx.url(), public);
    app.register_tenants(&secrets, "px", 6, 0).await;
    let operator = app.issue_token("release", "operator").await;

    b.open(&format!("{public}/ui/login"), "input[name=token]")
        .await;
    b.wait_for("input[name=token]")
        .await
        .send_keys(&operator)
        .await
        .unwrap();
    click(&b, "form[action='/ui/login'] button[type=submit]").await;
    b.wait_for("header.top .who").await;
    let id = app
        .start_wave(json!({"soak_seconds": 0, "max_concurrency": 1}))
        .await;
    b.open(
        &format!("{public}/ui/waves/{id}"),
        "#wave-live form[action$='/pause'] button",
    )
    .await;
    click(&b, "#wave-live form[action$='/pause'] button").await;
    let notice = b.wait_for("p.notice").await.text().await.unwrap();
    let session = b.client.get_named_cookie("drover_session").await.unwrap();

    assert!(notice.starts_with("Paused"), "{notice}");
    assert_eq!(
        b.client.current_url().await.unwrap().as_str(),
        format!("{public}/ui/waves/{id}?done=pause")
    );
    assert_eq!(session.secure(), Some(true), "{session:?}");
    assert_eq!(session.http_only(), Some(true), "{session:?}");
    let wave: Value = app.get_json(&format!("/v1/waves/{id}")).await;
    assert_eq!(wave["state"], "paused");
    let paused: Vec<String> = app
        .wave_events(&id)
        .await
        .into_iter()
        .filter(|(t, _, _)| t == "paused")
        .map(|(_, actor, _)| actor)
        .collect();
    assert_eq!(paused, vec!["token:release".to_string()]);
    b.close().await;
}
