//! "Webhooks reach anything": a subscription aimed at loopback, the cloud metadata address,
//! a private network or the control DB's port was accepted and sent to, the first 200
//! characters of the answer landed in `last_error` (readable by viewers), and viewers read
//! every receiver URL whole (a Slack URL is its credential).
//!
//! No test here sends traffic outside loopback: refused literal addresses are refused at
//! creation, before any connection, and a name that resolves to a refused address is
//! `localhost`, whose refusal is checked on a loopback listener that counts connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{tenant_body, wait_until, SecretsDir, TestApp};

/// A TCP listener on loopback that counts the connections made to it and closes them.
struct Listener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Listener {
    async fn start() -> Listener {
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = socket.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(conn);
            }
        });
        Listener { port, accepted }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// An HTTP receiver on loopback answering every request with `status` and a body that
/// must never be shown by drover.
async fn receiver(status: StatusCode, got: Arc<AtomicUsize>) -> u16 {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let got = got.clone();
            async move {
                got.fetch_add(1, Ordering::SeqCst);
                (status, "AccessKeyId=ASIA-internal-credential")
            }
        }),
    );
    tokio::spawn(async move { axum::serve(socket, app).await });
    port
}

fn hook(name: &str, url: &str) -> Value {
    json!({ "name": name, "url": url, "events": ["tenant.*"], "secret_ref": "file:webhooks/key" })
}

/// A daemon as deployed by default (public receivers only), or with `extra` settings.
async fn daemon(secrets: &SecretsDir, public_only: bool) -> TestApp {
    secrets.put("webhooks/key", "hmac-key");
    let b = TestApp::builder().env("DROVER_SECRETS_DIR", secrets.path());
    let b = if public_only {
        b.public_webhooks_only()
    } else {
        b
    };
    b.env("DROVER_WEBHOOK_RETRY_BACKOFF", "100ms").spawn().await
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_loopback_metadata_or_a_private_network_is_refused_at_creation() {
    let secrets = SecretsDir::new();
    let app = daemon(&secrets, true).await;
    let listener = Listener::start().await;

    let mut answers = Vec::new();
    for (i, (url, rule)) in [
        (
            format!("http://127.0.0.1:{}/hook", listener.port),
            "loopback",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            "link-local",
        ),
        ("http://[::1]/hook".into(), "loopback"),
        ("http://10.0.0.1/hook".into(), "private"),
        ("http://100.64.0.1/hook".into(), "carrier-grade NAT"),
        ("http://[fd00::1]/hook".into(), "unique-local"),
        ("http://[::ffff:169.254.169.254]/".into(), "link-local"),
        (
            format!("http://2130706433:{}/hook", listener.port),
            "loopback",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = app
            .call(
                Method::POST,
                "/v1/webhooks",
                Some(hook(&format!("h{i}"), &url)),
            )
            .await;
        answers.push((url, rule, status, body));
    }
    let (_, listed) = app.call(Method::GET, "/v1/webhooks", None).await;

    for (url, rule, status, body) in &answers {
        assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["error"]["field"], "url", "{url}: {body}");
        assert!(message(body).contains(rule), "{url} names {rule}: {body}");
    }
    assert_eq!(listed, json!([]), "nothing was stored");
    assert_eq!(listener.connections(), 0, "no connection was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_database_port_is_refused_even_inside_the_allowed_networks() {
    let secrets = SecretsDir::new();
    let app = daemon(&secrets, false).await;
    let port = app
        .database_url
        .parse::<tokio_postgres::Config>()
        .unwrap()
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432);

    let (status, body) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(hook("db", &format!("http://127.0.0.1:{port}/"))),
        )
        .await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(message(&body).contains("control database"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_loopback_is_a_dead_delivery_naming_the_rule_without_a_connection() {
    let secrets = SecretsDir::new();
    let app = daemon(&secrets, true).await;
    let listener = Listener::start().await;
    let url = format!("http://localhost:{}/hook", listener.port);

    let (status, created) = app
        .call(Method::POST, "/v1/webhooks", Some(hook("local", &url)))
        .await;
    app.create_tenant(&tenant_body("acme")).await;
    let dead = wait_until(Duration::from_secs(20), || async {
        let (_, h) = app.call(Method::GET, "/v1/webhooks/local", None).await;
        h["deliveries"]["dead"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    let (_, hook_now) = app.call(Method::GET, "/v1/webhooks/local", None).await;
    let (_, tested) = app
        .call(Method::POST, "/v1/webhooks/local/test", None)
        .await;

    assert_eq!(
        status,
        StatusCode::CREATED,
        "a name is checked when it resolves: {created}"
    );
    assert!(
        dead,
        "the delivery is dead at once, not retried: {hook_now}"
    );
    assert_eq!(hook_now["deliveries"]["pending"], 0, "{hook_now}");
    let error = hook_now["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("loopback"), "names the rule: {hook_now}");
    assert_eq!(tested["ok"], false, "{tested}");
    assert!(
        tested["error"]
            .as_str()
            .unwrap_or_default()
            .contains("loopback"),
        "{tested}"
    );
    assert_eq!(listener.connections(), 0, "no connection was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_allowed_networks_loopback_receivers_get_deliveries_and_last_error_holds_no_answer_text(
) {
    let secrets = SecretsDir::new();
    let app = daemon(&secrets, false).await;
    let (ok_got, failing_got) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let ok = receiver(StatusCode::OK, ok_got.clone()).await;
    let failing = receiver(StatusCode::SERVICE_UNAVAILABLE, failing_got.clone()).await;
    for (name, port) in [("ok", ok), ("failing", failing)] {
        let url = format!("http://127.0.0.1:{port}/hook");
        let (status, body) = app
            .call(Method::POST, "/v1/webhooks", Some(hook(name, &url)))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    app.create_tenant(&tenant_body("acme")).await;
    let delivered = wait_until(Duration::from_secs(20), || async {
        let (_, h) = app.call(Method::GET, "/v1/webhooks/ok", None).await;
        h["deliveries"]["delivered"].as_i64().unwrap_or(0) >= 1
    })
    .await;
    let failed = wait_until(Duration::from_secs(20), || async {
        let (_, h) = app.call(Method::GET, "/v1/webhooks/failing", None).await;
        h["last_error"].is_string()
    })
    .await;
    let (_, failing_hook) = app.call(Method::GET, "/v1/webhooks/failing", None).await;

    assert!(delivered && ok_got.load(Ordering::SeqCst) >= 1);
    assert!(
        failed && failing_got.load(Ordering::SeqCst) >= 1,
        "{failing_hook}"
    );
    let error = failing_hook["last_error"].as_str().unwrap();
    assert!(error.contains("503"), "the status is kept: {error}");
    assert!(
        !error.contains("AccessKeyId") && !error.contains("credential"),
        "the receiver's answer is never stored: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_see_webhook_urls_redacted_and_admins_see_them_whole() {
    let secrets = SecretsDir::new();
    let app = daemon(&secrets, false).await;
    let url = "http://127.0.0.1:9/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX?token=abc";
    let (status, created) = app
        .call(Method::POST, "/v1/webhooks", Some(hook("slack", url)))
        .await;
    let viewer = app.with_token(&app.issue_token("grafana", "viewer").await);
    let operator = app.with_token(&app.issue_token("ci", "operator").await);

    let (_, as_admin) = app.call(Method::GET, "/v1/webhooks/slack", None).await;
    let (_, viewer_list) = viewer.call(Method::GET, "/v1/webhooks", None).await;
    let (_, viewer_one) = viewer.call(Method::GET, "/v1/webhooks/slack", None).await;
    let (_, operator_one) = operator.call(Method::GET, "/v1/webhooks/slack", None).await;

    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(as_admin["url"], url);
    let shown = "http://127.0.0.1:9/services/T0000/B0000/XXXX…?…";
    assert_eq!(viewer_list[0]["url"], shown, "{viewer_list}");
    assert_eq!(viewer_one["url"], shown, "{viewer_one}");
    assert_eq!(operator_one["url"], shown, "{operator_one}");
}
