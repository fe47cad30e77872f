//! The console's pages in a real headless Chromium: login and logout, search, roles, a
//! tenant's trial end and portal URL.
//! Each test saves screenshots under `target/console-screenshots/`.

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::json;

use super::{browser_login, csrf_of, post_form, seed_tenants};
use crate::browser::Browser;
use crate::helpers::{spawn_app, tenant_body, TestApp, ADMIN_TOKEN};

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
async fn in_a_browser_a_tenant_page_shows_its_trial_end_and_its_portal_url() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::builder()
        .env("DROVER_PORTAL_URL_TEMPLATE", "https://{slug}.example.com")
        .spawn()
        .await;
    let mut trial = tenant_body("trial-acme");
    trial["trial_ends_at"] = json!("2030-01-02T03:04:05Z");
    let mut own = tenant_body("own-portal");
    own["portal_url"] = json!("https://portal.own.example.org/x");
    for body in [trial, own] {
        assert_eq!(app.create_tenant(&body).await.status(), StatusCode::CREATED);
    }
    browser_login(&b, &app, ADMIN_TOKEN).await;

    b.open(&format!("{}/ui/tenants/trial-acme", app.base()), "dl.facts")
        .await;
    let page = b.wait_for("main").await.text().await.unwrap();
    let link = b
        .client
        .find(Locator::Css("dl.facts a[rel~=noopener]"))
        .await
        .unwrap();
    let href = link.attr("href").await.unwrap();
    b.screenshot("tenant-trial-portal").await;
    b.open(&format!("{}/ui/tenants/own-portal", app.base()), "dl.facts")
        .await;
    let own_page = b.wait_for("main").await.text().await.unwrap();
    b.close().await;

    assert!(page.contains("Trial ends"), "{page}");
    assert!(page.contains("2030-01-02 03:04:05 UTC"), "{page}");
    assert!(page.contains("https://trial-acme.example.com"), "{page}");
    assert_eq!(href.as_deref(), Some("https://trial-acme.example.com"));
    assert!(
        own_page.contains("https://portal.own.example.org/x"),
        "{own_page}"
    );
    assert!(!own_page.contains("Trial ends"), "{own_page}");
}
