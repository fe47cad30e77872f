//! Tenant data never leaves drover: not through canary analysis, migration errors or lock
//! blockers, whether read from the feed, the stream, a webhook or a viewer's wave view.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{
    connect, wait_until, wave_app, ApiClient, MigrationsDir, SecretsDir, TestApp, WAVE_DONE,
};

/// An HTTP receiver recording every webhook body.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<String>>>);

async fn receive(State(r): State<Receiver>, body: Bytes) -> &'static str {
    r.0.lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    "ok"
}

impl Receiver {
    /// Listens on loopback and subscribes a webhook to every wave and tenant event.
    async fn subscribe(app: &TestApp, secrets: &SecretsDir) -> Receiver {
        secrets.put("webhooks/key", "whsec-leaks");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let r = Receiver::default();
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let (status, body) = app
            .call(
                Method::POST,
                "/v1/webhooks",
                Some(
                    json!({"name": "leaks", "url": url, "events": ["wave.*", "tenant.*"],
                    "secret_ref": "file:webhooks/key"}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        r
    }

    fn bodies(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// Everything the event stream replays after event `after` within `for_at_most`.
async fn stream_text(viewer: &ApiClient, after: i64, for_at_most: Duration) -> String {
    let mut resp = viewer
        .req(Method::GET, "/v1/events/stream")
        .header("Last-Event-ID", after.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{after}");
    let (deadline, mut text) = (Instant::now() + for_at_most, String::new());
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), resp.chunk()).await {
            Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
            Ok(_) => break,
            Err(_) if !text.is_empty() => break,
            Err(_) => {}
        }
    }
    text
}

/// The feed, the stream, the webhook bodies and the wave as a viewer reads it, as text.
async fn everything_a_viewer_can_read(
    viewer: &ApiClient,
    receiver: &Receiver,
    wave_id: &str,
) -> Vec<(&'static str, String)> {
    let (_, feed) = viewer.call(Method::GET, "/v1/events?limit=200", None).await;
    let (_, wave) = viewer
        .call(Method::GET, &format!("/v1/waves/{wave_id}"), None)
        .await;
    let (_, timeline) = viewer
        .call(Method::GET, &format!("/v1/waves/{wave_id}/events"), None)
        .await;
    // The oldest event (the webhook's or a tenant's creation): the stream replays the rest.
    let oldest = feed["items"]
        .as_array()
        .and_then(|items| items.last())
        .and_then(|e| e["id"].as_i64())
        .unwrap_or_else(|| panic!("no events: {feed}"));
    vec![
        ("feed", feed.to_string()),
        (
            "stream",
            stream_text(viewer, oldest, Duration::from_secs(5)).await,
        ),
        ("webhooks", receiver.bodies()),
        ("viewer's wave", wave.to_string()),
        ("wave timeline", timeline.to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_data_does_not_leave_through_canary_analysis() {
    let (migrations, secrets) = (
        MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]),
        SecretsDir::new(),
    );
    let app = wave_app(&migrations, &secrets, &[]).await;
    let receiver = Receiver::subscribe(&app, &secrets).await;
    let viewer = app.with_token(&app.issue_token("watcher", "viewer").await);
    let tenants = app.register_tenants(&secrets, "lk", 2, 1).await;
    connect(&tenants[0].url)
        .await
        .batch_execute("CREATE TABLE users (email text); INSERT INTO users VALUES ('ann.secret@example.com'), ('bob@example.com')")
        .await
        .unwrap();

    let id = app
        .start_wave(json!({"soak_seconds": 60, "analysis": [{
            "name": "exfiltrate", "type": "sql", "interval_seconds": 1,
            "query": "SELECT (SELECT string_agg(email, ',') FROM users)::int = 1"
        }]}))
        .await;
    let wave = app
        .wait_for_wave_state(&id, &["paused", "halted", "completed"])
        .await;
    let delivered = wait_until(Duration::from_secs(20), || async {
        receiver.bodies().contains("wave.paused")
    })
    .await;

    assert_eq!(wave["state"], "paused", "{wave:#}");
    assert!(delivered, "no wave.paused delivery: {}", receiver.bodies());
    let reason = wave["halt_reason"].as_str().unwrap();
    assert!(
        reason.contains("22P02 invalid_text_representation"),
        "{reason}"
    );
    assert_eq!(
        wave["analysis"]["evaluations"][0]["detail"], "22P02 invalid_text_representation",
        "{wave:#}"
    );
    for (place, text) in everything_a_viewer_can_read(&viewer, &receiver, &id).await {
        assert!(
            !text.contains("example.com"),
            "tenant data in the {place}: {text}"
        );
    }
}

/// A wave whose migration fails on a tenant row holding `carol.secret@example.com`
/// (`DETAIL: Failing row contains (…)`): the app, a subscribed receiver, a viewer, an
/// operator and the finished wave's id.
async fn fail_on_a_row() -> (TestApp, SecretsDir, Receiver, ApiClient, ApiClient, String) {
    let migrations =
        MigrationsDir::new(&[("V1__clear_notes.sql", "UPDATE accounts SET note = NULL;")]);
    let secrets = SecretsDir::new();
    let app = wave_app(&migrations, &secrets, &[]).await;
    let receiver = Receiver::subscribe(&app, &secrets).await;
    let viewer = app.with_token(&app.issue_token("watcher", "viewer").await);
    let operator = app.with_token(&app.issue_token("oncall", "operator").await);
    let tenants = app.register_tenants(&secrets, "rw", 1, 0).await;
    connect(&tenants[0].url)
        .await
        .batch_execute(
            "CREATE TABLE accounts (email text, note text NOT NULL); \
             INSERT INTO accounts VALUES ('carol.secret@example.com', 'vip')",
        )
        .await
        .unwrap();
    let id = app.start_wave(json!({"max_attempts": 1})).await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    assert_eq!(wave["counts"]["failed"], 1, "{wave:#}");
    (app, secrets, receiver, viewer, operator, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_rows_values_stay_out_of_events_and_webhooks_and_in_the_operators_view() {
    let (_app, _secrets, receiver, viewer, operator, id) = fail_on_a_row().await;
    let delivered = wait_until(Duration::from_secs(20), || async {
        receiver.bodies().contains("tenant.error")
    })
    .await;

    assert!(delivered, "no tenant.error delivery: {}", receiver.bodies());
    assert!(
        receiver.bodies().contains("V1: 23502 not_null_violation"),
        "{}",
        receiver.bodies()
    );
    for (place, text) in everything_a_viewer_can_read(&viewer, &receiver, &id).await {
        assert!(
            !text.contains("carol.secret"),
            "tenant data in the {place}: {text}"
        );
    }
    let (_, targets) = operator
        .call(Method::GET, &format!("/v1/waves/{id}/targets"), None)
        .await;
    assert!(
        targets[0]["error"]
            .as_str()
            .unwrap()
            .contains("Failing row contains (carol.secret@example.com"),
        "{targets:#}"
    );
    let (_, operators_wave) = operator
        .call(Method::GET, &format!("/v1/waves/{id}"), None)
        .await;
    assert!(
        operators_wave["failures"]
            .to_string()
            .contains("carol.secret"),
        "{operators_wave:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_a_failed_targets_error_without_the_rows_values() {
    let (app, _secrets, _receiver, viewer, _operator, id) = fail_on_a_row().await;

    for path in [format!("/v1/waves/{id}"), format!("/v1/waves/{id}/targets")] {
        let (_, body) = viewer.call(Method::GET, &path, None).await;
        assert!(!body.to_string().contains("carol.secret"), "{path}: {body}");
        assert!(
            body.to_string().contains("V1: 23502 not_null_violation"),
            "{path}: {body}"
        );
    }
    // The console's wave page, as the same viewer reads it.
    let cookie = crate::console::login(&app, &app.issue_token("reader", "viewer").await).await;
    let (status, page) = crate::console::get_page(&app, &cookie, &format!("/ui/waves/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(!page.contains("carol.secret"), "{page}");
    assert!(page.contains("23502 not_null_violation"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_blockers_query_is_stored_without_its_literals() {
    let migrations = MigrationsDir::new(&[
        ("V1__accounts.sql", "CREATE TABLE accounts (id int);"),
        ("V2__widen.sql", "ALTER TABLE accounts ADD COLUMN n int;"),
    ]);
    let secrets = SecretsDir::new();
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "bl", 1, 0).await;
    let first = app.start_wave(json!({"target_version": 1})).await;
    app.wait_for_wave_state(&first, &["completed"]).await;
    let mut holder = connect(&tenants[0].url).await;
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE; SELECT 'dave.secret@example.com' AS who, 42 AS n")
        .await
        .unwrap();

    let id = app
        .start_wave(json!({"lock_timeout_ms": 300, "max_attempts": 1,
            "lock_retries": {"attempts": 1, "first_lock_timeout_ms": 50, "first_pause_ms": 20}}))
        .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    tx.rollback().await.unwrap();

    assert_eq!(wave["counts"]["failed"], 1, "{wave:#}");
    let (_, targets) = app
        .call(Method::GET, &format!("/v1/waves/{id}/targets"), None)
        .await;
    let query = targets[0]["detail"]["blockers"][0]["query"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(query.contains("$1"), "{targets:#}");
    let (_, feed) = app.call(Method::GET, "/v1/events?limit=200", None).await;
    for (place, text) in [("target", targets.to_string()), ("feed", feed.to_string())] {
        assert!(
            !text.contains("dave.secret"),
            "tenant data in the {place}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_reaching_past_its_transaction_or_holding_two_statements_is_refused_at_creation() {
    let (migrations, secrets) = (
        MigrationsDir::new(&[("V1__t.sql", "CREATE TABLE t (id int);")]),
        SecretsDir::new(),
    );
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "gd", 2, 1).await;

    for (query, named) in [
        (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
            "pg_terminate_backend",
        ),
        ("SELECT true; SELECT false", "exactly one SELECT"),
    ] {
        let (status, body) = app
            .call(
                Method::POST,
                "/v1/waves",
                Some(json!({"soak_seconds": 5, "analysis": [
                    {"name": "bad", "type": "sql", "query": query}
                ]})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(body.to_string().contains(named), "{query}: {body}");
    }
    let (_, waves) = app.call(Method::GET, "/v1/waves", None).await;
    assert_eq!(waves, json!([]), "a refused wave was stored");
}
