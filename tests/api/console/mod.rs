//! The web console (`/ui/`, README.md#web-console): sessions, CSRF, roles and headers over
//! plain HTTP here; the pages in a real headless Chromium in [`pages`] (harness:
//! `tests/api/browser.rs`); page weight and render times at 10,000 tenants in [`weight`].

mod pages;
mod waves;
mod weight;

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::browser::Browser;
use crate::helpers::{spawn_app, TestApp, ADMIN_TOKEN};

/// A client that shows redirects instead of following them, and keeps no cookies: each
/// test says which cookie it sends.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in with `token` and returns the session cookie (`drover_session=...`).
pub async fn login(app: &TestApp, token: &str) -> String {
    let resp = raw_client()
        .post(format!("{}/ui/login", app.base()))
        .form(&[("token", token), ("next", "/ui/")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "login with a good token"
    );
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/ui"), "{set}");
    assert!(set.contains("Max-Age=28800"), "{set}");
    set.split(';').next().unwrap().to_string()
}

/// `GET path` with the cookie; status and body.
pub async fn get_page(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let resp = raw_client()
        .get(format!("{}{path}", app.base()))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// The CSRF token in a page's forms.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field")
        + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_string()
}

/// `POST path` with the cookie and form fields.
pub async fn post_form(
    app: &TestApp,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    raw_client()
        .post(format!("{}{path}", app.base()))
        .header(COOKIE, cookie)
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_visit_is_sent_to_the_login_page_with_where_it_was_going() {
    let app = spawn_app().await;

    let resp = raw_client()
        .get(format!("{}/ui/tenants?q=acme", app.base()))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers()[LOCATION],
        "/ui/login?next=/ui/tenants%3Fq%3Dacme"
    );
    let login = raw_client()
        .get(format!(
            "{}/ui/login?next=https://evil.example/",
            app.base()
        ))
        .send()
        .await
        .unwrap();
    let csp = login.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(login.headers()["x-content-type-options"], "nosniff");
    assert_eq!(login.headers()["referrer-policy"], "same-origin");
    let body = login.text().await.unwrap();
    assert!(body.contains("<title>drover"), "{body}");
    assert!(body.contains("type=\"password\" name=\"token\""), "{body}");
    assert!(
        !body.contains("evil.example"),
        "next must be a console path"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opens_every_page_and_logout_needs_the_csrf_token_and_ends_it() {
    let app = spawn_app().await;
    let cookie = login(&app, ADMIN_TOKEN).await;

    for path in [
        "/ui/",
        "/ui/health",
        "/ui/tenants",
        "/ui/waves",
        "/ui/drift",
        "/ui/schedules",
        "/ui/webhooks",
    ] {
        let (status, body) = get_page(&app, &cookie, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.contains("<title>drover"), "{path}");
        assert!(body.contains("root (admin)"), "{path}");
    }
    let (_, page) = get_page(&app, &cookie, "/ui/").await;
    let csrf = csrf_of(&page);

    let without = post_form(&app, &cookie, "/ui/logout", &[]).await;
    let wrong = post_form(&app, &cookie, "/ui/logout", &[("csrf", &"0".repeat(64))]).await;
    let foreign = raw_client()
        .post(format!("{}/ui/logout", app.base()))
        .header(COOKIE, &cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), StatusCode::FORBIDDEN);
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert_eq!(get_page(&app, &cookie, "/ui/").await.0, StatusCode::OK);

    let out = post_form(&app, &cookie, "/ui/logout", &[("csrf", &csrf)]).await;

    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        get_page(&app, &cookie, "/ui/").await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_token_may_not_log_in_and_a_revoked_token_ends_its_session() {
    let app = spawn_app().await;
    let resolver = app.issue_token("svc", "resolver").await;
    let viewer = app.issue_token("support", "viewer").await;

    let refused = raw_client()
        .post(format!("{}/ui/login", app.base()))
        .form(&[("token", resolver.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("cannot use the console"));

    let cookie = login(&app, &viewer).await;
    let (status, page) = get_page(&app, &cookie, "/ui/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("token:support (viewer)"));

    app.revoke_token("support").await;

    let gone = crate::helpers::wait_until(std::time::Duration::from_secs(5), || async {
        get_page(&app, &cookie, "/ui/").await.0 == StatusCode::SEE_OTHER
    })
    .await;
    assert!(gone, "a revoked token's session must end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_without_the_csrf_token_gets_403_and_changes_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        app.create_tenant(&crate::helpers::tenant_body("acme"))
            .await
            .status(),
        StatusCode::CREATED
    );
    let cookie = login(&app, ADMIN_TOKEN).await;

    let resp = post_form(
        &app,
        &cookie,
        "/ui/tenants/acme/suspend",
        &[("reason", "x")],
    )
    .await;

    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let t: serde_json::Value = app.get_json("/v1/tenants/acme").await;
    assert_eq!(t["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_form_or_a_malformed_wave_id_gets_a_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        app.create_tenant(&crate::helpers::tenant_body("acme"))
            .await
            .status(),
        StatusCode::CREATED
    );
    let cookie = login(&app, ADMIN_TOKEN).await;
    let (_, page) = get_page(&app, &cookie, "/ui/tenants/acme").await;
    let csrf = csrf_of(&page);
    let padding = "x".repeat(70 * 1024);

    let oversized = post_form(
        &app,
        &cookie,
        "/ui/tenants/acme/suspend",
        &[("csrf", &csrf), ("reason", &padding)],
    )
    .await;
    let malformed = post_form(
        &app,
        &cookie,
        "/ui/waves/not-a-wave/pause",
        &[("csrf", &csrf)],
    )
    .await;

    assert!(
        oversized.status().is_client_error(),
        "{}",
        oversized.status()
    );
    assert!(
        malformed.status().is_client_error(),
        "{}",
        malformed.status()
    );
    let t: serde_json::Value = app.get_json("/v1/tenants/acme").await;
    assert_eq!(t["status"], "active");
    assert!(app
        .event_types("acme")
        .await
        .iter()
        .all(|t| t != "suspended"));
}

/// Logs in through the form and waits for the page `next` leads to.
pub async fn browser_login(b: &Browser, app: &TestApp, token: &str) {
    b.open(&format!("{}/ui/login", app.base()), "input[name=token]")
        .await;
    let field = b.wait_for("input[name=token]").await;
    field.send_keys(token).await.unwrap();
    b.wait_for("form[action='/ui/login'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("header.top .who").await;
}

/// `n` tenants inserted in one statement (no events, no API): a fleet to search in.
pub async fn seed_tenants(app: &TestApp, n: i32) {
    app.control_db()
        .await
        .execute(
            "INSERT INTO control_plane.tenants \
             (slug, display_name, db_name, db_host, db_user, db_secret_ref, status, schema_version, labels, contact_email) \
             SELECT 'acct-' || g, 'Account ' || g || ' ' || substr(md5(g::text), 1, 6), \
                    't_' || g, 'db' || (1 + g % 3) || '.internal', 'u_' || g, 'file:tenants/acct-' || g, \
                    (ARRAY['active','active','active','suspended'])[1 + g % 4], \
                    1 + g % 3, jsonb_build_object('region', (ARRAY['eu','us'])[1 + g % 2]), \
                    'ops' || g || '@example.com' \
             FROM generate_series(1, $1::int) g",
            &[&n],
        )
        .await
        .unwrap();
}
