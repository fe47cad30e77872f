//! The exchange with an external provisioner, end to end.

use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::Setup;
use crate::helpers::*;

/// A slug unique to one test.
fn slug(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn token_of(request: &Value) -> String {
    request["body"]["callback"]["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn succeeded(slug: &str) -> Value {
    let (host, port) = server_host_port();
    let ident = slug.replace('-', "_");
    json!({ "status": "succeeded", "db_host": host, "db_port": port,
        "db_name": format!("t_{ident}"), "db_user": format!("t_{ident}"),
        "db_secret_ref": format!("file:tenants/{slug}") })
}

async fn database_exists(name: &str) -> bool {
    let admin = connect(&db_url("postgres")).await;
    admin
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS e",
            &[&name],
        )
        .await
        .unwrap()
        .get("e")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_on_an_external_server_becomes_active_when_its_provisioner_calls_back_and_a_real_client_logs_in(
) {
    let s = Setup::start(&["flaky-succeed"], "5m").await;
    let slug = slug("ext-ok");

    let created = s.create(&slug).await;
    let active = s.wait_status(&slug, "active").await;

    assert_eq!(created["status"], "provisioning");
    assert_eq!(created["server"], "ext");
    assert_eq!(active["provisioning_error"], Value::Null);
    // The first send was answered 503: the retry carried the same delivery id and token.
    let requests = s.receiver.requests();
    assert!(requests.len() >= 2, "{requests:?}");
    assert!(
        requests.iter().all(|r| r["verified"] == true),
        "{requests:?}"
    );
    assert_eq!(requests[0]["delivery_id"], requests[1]["delivery_id"]);
    assert_eq!(token_of(&requests[0]), token_of(&requests[1]));
    let body = &requests[0]["body"];
    assert_eq!(requests[0]["event"], "tenant.provisioning_requested");
    assert_eq!(body["type"], "tenant.provisioning_requested");
    assert_eq!(body["tenant"], slug.as_str());
    assert_eq!(body["delivery_id"], requests[0]["delivery_id"]);
    assert_eq!(body["payload"]["db_name"], active["db_name"]);
    assert_eq!(body["payload"]["db_user"], active["db_user"]);
    assert_eq!(body["payload"]["labels"]["region"], "eu");
    assert_eq!(
        body["callback"]["url"],
        format!("http://127.0.0.1:{}/v1/tenants/{slug}/provisioning", s.port)
    );
    // The receiver records its callback's answer after drover has already set the
    // tenant active, so wait for it rather than read it at once.
    assert_eq!(s.wait_callbacks(1).await[0]["status"], 200);
    // It resolves, and a real client logs in with the password the job wrote, into a
    // database drover migrated.
    let resolved: Value = s.daemon().resolve(&slug).await.json().await.unwrap();
    let tenant = connect(resolved["dsn"].as_str().unwrap()).await;
    let n: i64 = tenant
        .query_one("SELECT count(*) AS n FROM widgets", &[])
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 0);
    let types = s.daemon().event_types(&slug).await;
    for t in ["provisioning_requested", "migrated", "provisioned"] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    // Only the token's SHA-256 is kept.
    let token = token_of(&requests[0]);
    let hashed = format!("token_sha256 = sha256(convert_to('{token}', 'UTF8'))");
    assert_eq!(s.rows("provision_requests", &hashed).await, 1);
    assert_eq!(
        s.rows(
            "provision_requests r",
            &format!("row_to_json(r)::text LIKE '%{token}%'")
        )
        .await,
        0
    );
    // Nor does the token reach the feed (and so the stream and webhooks).
    assert_eq!(
        s.rows(
            "tenant_events e",
            &format!("row_to_json(e)::text LIKE '%{token}%'")
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_callback_is_refused_and_changes_nothing_and_deprovisioning_is_the_same_exchange(
) {
    let s = Setup::start(&["succeed"], "5m").await;
    let slug = slug("ext-replay");
    s.create(&slug).await;
    let active = s.wait_status(&slug, "active").await;
    let token = token_of(&s.receiver.requests()[0]);
    let events = s.rows("tenant_events", "true").await;

    let replay = s.report(&slug, &token, &succeeded(&slug)).await;
    let failed_replay = s
        .report(
            &slug,
            &token,
            &json!({"status": "failed", "error": {"message": "x", "retryable": true}}),
        )
        .await;

    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(failed_replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.rows("tenant_events", "true").await, events);
    assert_eq!(s.tenant(&slug).await, active);

    let db = active["db_name"].as_str().unwrap().to_string();
    assert!(database_exists(&db).await);
    let deleting = s.daemon().delete_tenant_and_database(&slug).await;
    assert_eq!(deleting.status(), StatusCode::OK);
    let deleting: Value = deleting.json().await.unwrap();
    assert_eq!(deleting["status"], "deleting");
    let gone = wait_until(std::time::Duration::from_secs(30), || async {
        s.daemon().get_tenant(&slug).await.status() == StatusCode::NOT_FOUND
    })
    .await;
    assert!(gone, "callbacks: {:?}", s.receiver.callbacks());
    let requests = s.receiver.requests();
    assert!(requests
        .iter()
        .any(|r| r["event"] == "tenant.deprovisioning_requested" && r["verified"] == true));
    assert!(!database_exists(&db).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioner_that_fails_retryably_is_asked_again_and_one_that_fails_for_good_is_not() {
    let s = Setup::start(&["fail-retryable", "fail"], "5m").await;
    let slug = slug("ext-fail");
    s.create(&slug).await;

    let callbacks = s.wait_callbacks(2).await;
    let t = s.tenant(&slug).await;

    assert!(
        callbacks.iter().all(|c| c["status"] == 200),
        "{callbacks:?}"
    );
    assert_eq!(t["status"], "provisioning");
    assert_eq!(t["provisioning_error"]["step"], "external");
    assert_eq!(t["provisioning_error"]["retryable"], false);
    let message = t["provisioning_error"]["message"].as_str().unwrap();
    assert!(message.contains("quota exceeded"), "{message}");
    let requests = s.receiver.requests();
    assert_ne!(requests[0]["delivery_id"], requests[1]["delivery_id"]);
    assert_eq!(requests[1]["body"]["payload"]["attempt"], 2);
    // Failed for good: no retry is scheduled, so no third request comes.
    let id = t["id"].as_str().unwrap();
    let waiting = format!("id = '{id}' AND provision_retry_at IS NOT NULL");
    assert_eq!(s.rows("tenants", &waiting).await, 0);
    assert_eq!(
        s.rows(
            "provision_requests",
            &format!("tenant_id = '{id}' AND outcome IS NULL")
        )
        .await,
        0
    );
    let failures = s.daemon().event_types(&slug).await;
    assert_eq!(
        failures
            .iter()
            .filter(|t| *t == "provisioning_failed")
            .count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioner_that_never_calls_back_shows_a_provisioning_error_and_is_asked_again() {
    let s = Setup::start(&["silent"], "2s").await;
    let slug = slug("ext-silent");
    s.create(&slug).await;

    let requests = s.wait_requests(2).await;
    let errored = wait_until(std::time::Duration::from_secs(30), || async {
        s.tenant(&slug).await["provisioning_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("did not call back"))
    })
    .await;

    assert!(errored, "{}", s.tenant(&slug).await);
    assert_eq!(
        s.tenant(&slug).await["provisioning_error"]["retryable"],
        true
    );
    assert_ne!(requests[0]["delivery_id"], requests[1]["delivery_id"]);
    // The expired request's token is refused.
    let late = s
        .report(&slug, &token_of(&requests[0]), &succeeded(&slug))
        .await;
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.tenant(&slug).await["status"], "provisioning");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_with_another_tenant_s_token_or_an_api_token_is_refused_and_changes_nothing() {
    let s = Setup::start(&["wait"], "5m").await;
    let (a, b) = (slug("ext-a"), slug("ext-b"));
    s.create(&a).await;
    s.create(&b).await;
    let requests = s.wait_requests(2).await;
    let token_a = requests
        .iter()
        .find(|r| r["body"]["tenant"] == a.as_str())
        .map(token_of)
        .unwrap();
    let events = s.rows("tenant_events", "true").await;

    let foreign = s.report(&b, &token_a, &succeeded(&b)).await;
    let admin = s.report(&b, ADMIN_TOKEN, &succeeded(&b)).await;
    let made_up = s.report(&b, &"0".repeat(64), &succeeded(&b)).await;

    for r in [foreign, admin, made_up] {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(s.rows("tenant_events", "true").await, events);
    assert_eq!(s.tenant(&b).await["status"], "provisioning");
    // Nothing was spent: both jobs still complete with their own tokens.
    s.receiver.go();
    s.wait_status(&a, "active").await;
    s.wait_status(&b, "active").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_between_request_and_callback_is_completed_by_the_callback_to_its_successor(
) {
    let mut s = Setup::start(&["wait"], "5m").await;
    let slug = slug("ext-kill");
    s.create(&slug).await;
    s.wait_requests(1).await;

    s.kill9_and_restart().await;
    s.receiver.go();
    s.wait_status(&slug, "active").await;

    let resolved = s.daemon().resolve(&slug).await;
    assert_eq!(resolved.status(), StatusCode::OK);
    let resolved: Value = resolved.json().await.unwrap();
    connect(resolved["dsn"].as_str().unwrap()).await;
}
