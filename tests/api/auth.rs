//! Tokens, health endpoints and request limits.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, tenant_body};

#[tokio::test]
async fn missing_or_wrong_token_is_401_with_the_json_error_shape() {
    let app = spawn_app().await;
    let url = format!("{}/v1/tenants", app.base());

    let missing = app.get_without_token("/v1/tenants").await;
    let wrong = app
        .with_token("test-admin-token-0123456789abcdeX")
        .get("/v1/tenants")
        .await;
    let not_bearer = app
        .http
        .get(&url)
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    let create = app
        .http
        .post(&url)
        .json(&tenant_body("acme"))
        .send()
        .await
        .unwrap();

    for resp in [missing, wrong, not_bearer, create] {
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(app.tenant_rows("true").await, 0);
}

#[tokio::test]
async fn healthz_and_readyz_need_no_token_and_readyz_reports_the_schema() {
    let app = spawn_app().await;

    let health = app.get_without_token("/healthz").await;
    let ready = app.get_without_token("/readyz").await;

    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(
        body["control_schema_version"],
        drover::db::control_head_version()
    );
}

#[tokio::test]
async fn readyz_is_503_when_the_control_schema_is_behind() {
    let app = spawn_app().await;
    let db = app.control_db().await;
    db.batch_execute("DELETE FROM control_plane.refinery_schema_history")
        .await
        .unwrap();

    let ready = app.get_without_token("/readyz").await;

    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn body_over_the_limit_is_413_and_unknown_routes_are_json_404() {
    let app = spawn_app().await;
    let mut body = tenant_body("acme");
    body["display_name"] = Value::String("x".repeat(300_000));

    let big = app.create_tenant(&body).await;
    let nowhere = app.get("/v1/nowhere").await;

    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let err: Value = big.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_body");
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    let err: Value = nowhere.json().await.unwrap();
    assert_eq!(err["error"]["code"], "not_found");
}

#[tokio::test]
async fn stopping_the_daemon_drains_and_then_refuses_connections() {
    let app = spawn_app().await;
    let base = app.base();
    let http = app.http.clone();
    assert!(http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());

    app.stop().await;

    assert!(http.get(format!("{base}/healthz")).send().await.is_err());
}
