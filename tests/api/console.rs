//! The web console (`/ui/`, SPEC §18): sessions, CSRF, roles and headers over plain HTTP,
//! then the pages in a real headless Chromium (see `browser.rs`).

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

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

// ---- In a real browser ----------------------------------------------------------------

use crate::browser::Browser;
use fantoccini::Locator;

/// Logs in through the form and waits for the page `next` leads to.
async fn browser_login(b: &Browser, app: &TestApp, token: &str) {
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
async fn seed_tenants(app: &TestApp, n: i32) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_an_anonymous_visit_goes_to_login_and_login_then_logout_work() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = spawn_app().await;
    seed_tenants(&app, 40).await;

    b.open(&format!("{}/ui/tenants", app.base()), "input[name=token]")
        .await;
    assert_eq!(b.path().await, "/ui/login?next=/ui/tenants");
    assert!(b.client.title().await.unwrap().starts_with("drover"));
    b.screenshot("login").await;

    b.wait_for("input[name=token]")
        .await
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    b.wait_for("form[action='/ui/login'] button")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("form.search").await;
    assert_eq!(b.path().await, "/ui/tenants");

    b.open(&format!("{}/ui/", app.base()), ".chart svg").await;
    assert!(b.client.title().await.unwrap().starts_with("drover"));
    // The health check is loaded into the page by the script after the first render.
    b.wait_for("#fleet-health .badge").await;
    let fleet = b.wait_for("main").await.text().await.unwrap();
    assert!(fleet.contains("Live tenants"), "{fleet}");
    b.screenshot("fleet").await;

    b.wait_for("form[action='/ui/logout'] button")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("input[name=token]").await;
    assert!(b.path().await.starts_with("/ui/login"));
    b.open(&format!("{}/ui/", app.base()), "input[name=token]")
        .await;
    assert!(b.path().await.starts_with("/ui/login"), "logged out");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_search_finds_one_tenant_among_a_thousand() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = spawn_app().await;
    seed_tenants(&app, 1000).await;
    let mut needle = crate::helpers::tenant_body("needle-co");
    needle["display_name"] = serde_json::json!("Needle & Thread <Co>");
    needle["contact_email"] = serde_json::json!("ops@needle.example");
    assert_eq!(
        app.create_tenant(&needle).await.status(),
        StatusCode::CREATED
    );
    browser_login(&b, &app, ADMIN_TOKEN).await;

    b.open(&format!("{}/ui/tenants", app.base()), "form.search")
        .await;
    let first_page = b
        .client
        .find_all(Locator::Css("main tbody tr"))
        .await
        .unwrap();
    assert_eq!(first_page.len(), 50, "one page of 50");
    b.screenshot("tenants").await;
    b.wait_for("#q")
        .await
        .send_keys("ops@needle.example")
        .await
        .unwrap();
    b.wait_for("form.search button")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("main tbody tr").await;

    let rows = b
        .client
        .find_all(Locator::Css("main tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "exactly the one tenant");
    assert!(rows[0]
        .text()
        .await
        .unwrap()
        .contains("Needle & Thread <Co>"));
    b.screenshot("tenants-search").await;

    b.wait_for("main tbody tr a").await.click().await.unwrap();
    b.wait_for("#conn").await;
    assert_eq!(b.path().await, "/ui/tenants/needle-co");
    let page = b.wait_for("main").await.text().await.unwrap();
    assert!(
        page.contains("db1.internal") && page.contains("tenant.created"),
        "{page}"
    );
    assert!(
        !page.contains("file:tenants/needle-co"),
        "the secret reference is not shown"
    );
    b.screenshot("tenant").await;

    // By name, by label and status: the same search the API has.
    b.open(
        &format!(
            "{}/ui/tenants?q=needle+%26+thread&label=region=eu&status=active",
            app.base()
        ),
        "main tbody tr",
    )
    .await;
    let rows = b
        .client
        .find_all(Locator::Css("main tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_viewer_sees_no_action_buttons_and_a_forged_post_with_its_cookie_gets_403() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = spawn_app().await;
    assert_eq!(
        app.create_tenant(&crate::helpers::tenant_body("acme"))
            .await
            .status(),
        StatusCode::CREATED
    );
    let viewer = app.issue_token("support", "viewer").await;
    let operator = app.issue_token("oncall", "operator").await;

    browser_login(&b, &app, &viewer).await;
    b.open(&format!("{}/ui/tenants/acme", app.base()), "#conn")
        .await;
    let buttons = b
        .client
        .find_all(Locator::Css("main button"))
        .await
        .unwrap();
    assert!(buttons.is_empty(), "a viewer sees no action buttons");
    let cookie = b.client.get_named_cookie("drover_session").await.unwrap();
    let cookie = format!("drover_session={}", cookie.value());
    let csrf = csrf_of(&b.client.source().await.unwrap());

    let forged = post_form(
        &app,
        &cookie,
        "/ui/tenants/acme/suspend",
        &[("csrf", &csrf), ("reason", "x")],
    )
    .await;

    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.text().await.unwrap().contains("needs operator"));
    let t: serde_json::Value = app.get_json("/v1/tenants/acme").await;
    assert_eq!(t["status"], "active");

    // An operator sees Suspend and it works, recorded as its token's identity.
    b.wait_for("form[action='/ui/logout'] button")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("input[name=token]").await;
    browser_login(&b, &app, &operator).await;
    b.open(&format!("{}/ui/tenants/acme", app.base()), "#conn")
        .await;
    b.wait_for("#reason")
        .await
        .send_keys("billing")
        .await
        .unwrap();
    // The confirmation dialog is the script's; accept it.
    b.client
        .execute("window.confirm = () => true; return true;", vec![])
        .await
        .unwrap();
    b.wait_for("main button.danger")
        .await
        .click()
        .await
        .unwrap();
    let suspended = crate::helpers::wait_until(std::time::Duration::from_secs(10), || async {
        let t: serde_json::Value = app.get_json("/v1/tenants/acme").await;
        t["status"] == "suspended"
    })
    .await;
    assert!(suspended);
    let events: serde_json::Value = app
        .get_json("/v1/events?tenant=acme&type=tenant.suspended")
        .await;
    assert_eq!(events["items"][0]["actor"], "token:oncall");
    b.close().await;
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

/// Median of `runs` timed `GET path` (the daemon is this test build: unoptimised).
async fn median_get(app: &TestApp, cookie: &str, path: &str, runs: usize) -> (Duration, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let (status, body) = get_page(app, cookie, path).await;
        times.push(t.elapsed());
        assert_eq!(status, StatusCode::OK, "{path}");
        bytes = body.len();
    }
    times.sort();
    (times[runs / 2], bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_ten_thousand_tenants_every_page_weighs_under_150_kb_and_its_times_are_printed() {
    let app = spawn_app().await;
    seed_tenants(&app, 10_000).await;
    app.control_db()
        .await
        .batch_execute("ANALYZE control_plane.tenants")
        .await
        .unwrap();
    let cookie = login(&app, ADMIN_TOKEN).await;
    let assets = drover::console::assets::total_bytes();

    let mut report = format!(
        "console at 10,000 tenants (debug build; assets {assets} bytes):\n  {:<32} {:>9} {:>10}\n",
        "page", "HTML", "server"
    );
    for path in [
        "/ui/",
        "/ui/health",
        "/ui/tenants",
        "/ui/tenants?q=account+4242",
        "/ui/tenants?status=suspended&label=region=eu&version=2",
        "/ui/tenants/acct-4242",
    ] {
        let (median, html) = median_get(&app, &cookie, path, 15).await;
        report.push_str(&format!("  {path:<32} {html:>9} {median:>10.1?}\n"));
        assert!(
            html + assets < 150 * 1024,
            "{path}: {html} + {assets} bytes is over 150 KB"
        );
    }
    // First render as the browser sees it (Navigation Timing, from the request to the
    // load event), when a browser is here.
    if let Some(b) = Browser::start().await {
        browser_login(&b, &app, ADMIN_TOKEN).await;
        for path in ["/ui/", "/ui/tenants"] {
            b.open(&format!("{}{path}", app.base()), "main h1").await;
            let ms = b
                .client
                .execute(
                    "const n = performance.getEntriesByType('navigation')[0]; \
                     return [n.responseEnd - n.requestStart, n.loadEventEnd - n.startTime];",
                    vec![],
                )
                .await
                .unwrap();
            report.push_str(&format!(
                "  browser {path:<24} response {:.0} ms, loaded {:.0} ms\n",
                ms[0].as_f64().unwrap_or(-1.0),
                ms[1].as_f64().unwrap_or(-1.0)
            ));
        }
        b.close().await;
    }
    // To the process's stderr: the figures are the point of this test.
    let _ = writeln!(std::io::stderr(), "\n{report}");
}
