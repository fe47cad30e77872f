//! Console forms: a CSRF token belongs to its own session, and the login form refuses a
//! post from another site.

use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

use crate::console::{csrf_of, get_page, login, post_form};
use crate::helpers::{spawn_app, tenant_body, TestApp, ADMIN_TOKEN};

/// Console sessions stored.
async fn sessions(app: &TestApp) -> i64 {
    app.control_db()
        .await
        .query_one(
            "SELECT count(*) AS n FROM control_plane.console_sessions",
            &[],
        )
        .await
        .unwrap()
        .get("n")
}

async fn status_of(app: &TestApp, slug: &str) -> String {
    let t: Value = app.get_json(&format!("/v1/tenants/{slug}")).await;
    t["status"].as_str().unwrap_or_default().to_string()
}

// Pins: a CSRF check that accepts any live session's token (or any well-formed one)
// instead of the token of the session making the request: a page that learnt one
// session's token could then post as every other session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_carrying_another_sessions_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        app.create_tenant(&tenant_body("acme")).await.status(),
        StatusCode::CREATED
    );
    let other = app.issue_token("other-person", "operator").await;
    let mine = login(&app, ADMIN_TOKEN).await;
    let theirs = login(&app, &other).await;
    let my_csrf = csrf_of(&get_page(&app, &mine, "/ui/tenants/acme").await.1);
    let their_csrf = csrf_of(&get_page(&app, &theirs, "/ui/tenants/acme").await.1);
    assert_ne!(my_csrf, their_csrf, "each session has its own token");

    let crossed = post_form(
        &app,
        &mine,
        "/ui/tenants/acme/suspend",
        &[("csrf", &their_csrf), ("reason", "crossed")],
    )
    .await;
    let status_after_crossed = status_of(&app, "acme").await;
    let own = post_form(
        &app,
        &mine,
        "/ui/tenants/acme/suspend",
        &[("csrf", &my_csrf), ("reason", "own")],
    )
    .await;

    assert_eq!(crossed.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        status_after_crossed, "active",
        "the crossed form changed nothing"
    );
    assert!(
        own.status().is_redirection() || own.status().is_success(),
        "the session's own token is accepted: {}",
        own.status()
    );
    assert_eq!(status_of(&app, "acme").await, "suspended");
}

// Pins: the login form without its Origin check (the guard of every other form does not
// cover it): another site could post a token it holds and log the browser into a session
// of its choosing. A same-site Origin, and none at all (curl), still log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_posted_from_another_origin_is_refused_and_opens_no_session() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post_login = |origin: Option<String>| {
        let mut req = client
            .post(format!("{}/ui/login", app.base()))
            .form(&[("token", ADMIN_TOKEN), ("next", "/ui/")]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };

    let foreign = post_login(Some("https://evil.example".into()))
        .await
        .unwrap();
    let foreign_status = foreign.status();
    let foreign_cookie = foreign.headers().get(SET_COOKIE).cloned();
    let sessions_after_foreign = sessions(&app).await;
    let same_site = post_login(Some(app.base())).await.unwrap();
    let without = post_login(None).await.unwrap();

    assert_eq!(foreign_status, StatusCode::FORBIDDEN);
    assert!(
        foreign_cookie.is_none(),
        "no session cookie for another site"
    );
    assert_eq!(sessions_after_foreign, 0, "no session stored");
    for resp in [same_site, without] {
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(resp.headers()[LOCATION], "/ui/");
        assert!(resp.headers().contains_key(SET_COOKIE));
    }
    assert_eq!(sessions(&app).await, 2);
}
