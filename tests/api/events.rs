//! The fleet's event feed, its SSE stream and signed webhooks
//! (docs/design.md#events-and-webhooks), against a real HTTP receiver running inside the test
//! and real `drover serve` processes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    connect, counted_migrations_dir, fresh_control_database, spawn_app, tenant_body, wait_until,
    wave_app, ApiClient, Daemon, SecretsDir, TestApp, WAVE_DONE,
};

const KEY: &str = "whsec-test-key-7f3a9c";

/// What the receiver does with a request.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Mode {
    Ok = 0,
    Unavailable = 1,
    Hang = 2,
    Huge = 3,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    event: String,
    delivery: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    answered: u16,
}

/// A small HTTP server recording every request.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    mode: Arc<AtomicU8>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mode = r.mode.load(Ordering::SeqCst);
    let answered = if mode == Mode::Ok as u8 { 200 } else { 503 };
    r.got.lock().unwrap().push(Received {
        event: h("x-drover-event"),
        delivery: h("x-drover-delivery"),
        timestamp: h("x-drover-timestamp"),
        signature: h("x-drover-signature"),
        body: body.to_vec(),
        answered,
    });
    match mode {
        m if m == Mode::Hang as u8 => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            (StatusCode::OK, Vec::new())
        }
        m if m == Mode::Huge as u8 => (StatusCode::INTERNAL_SERVER_ERROR, vec![b'x'; 10 << 20]),
        m if m == Mode::Unavailable as u8 => (StatusCode::SERVICE_UNAVAILABLE, b"down".to_vec()),
        _ => (StatusCode::OK, b"ok".to_vec()),
    }
}

impl Receiver {
    async fn start(mode: Mode) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap(),
            got: Arc::default(),
            mode: Arc::new(AtomicU8::new(mode as u8)),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Accepted requests by delivery id.
    fn delivered(&self) -> BTreeMap<String, Vec<Received>> {
        let mut m: BTreeMap<String, Vec<Received>> = BTreeMap::new();
        for r in self.got().into_iter().filter(|r| r.answered == 200) {
            m.entry(r.delivery.clone()).or_default().push(r);
        }
        m
    }
}

/// Recomputes the signature as a receiver would: HMAC-SHA256(key, timestamp "." body).
fn verifies(r: &Received, key: &str) -> bool {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let mut signed = r.timestamp.as_bytes().to_vec();
    signed.push(b'.');
    signed.extend_from_slice(&r.body);
    let hex = r.signature.strip_prefix("sha256=").unwrap_or_default();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    ring::hmac::verify(&k, &signed, &bytes).is_ok()
}

/// `POST /v1/webhooks` signed with the `file:webhooks/key` secret (asserts the 201).
async fn add_webhook(api: &ApiClient, name: &str, url: &str, events: &[&str]) -> Value {
    let (status, body) = api
        .call(
        Method::POST,
        "/v1/webhooks",
        Some(
            json!({"name": name, "url": url, "events": events, "secret_ref": "file:webhooks/key"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gets_every_wave_event_and_tenant_created_signed_and_without_secrets() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    secrets.put("webhooks/key", KEY);
    let app = wave_app(&migrations, &secrets, &[]).await;
    let receiver = Receiver::start(Mode::Ok).await;
    add_webhook(&app, "ops", &receiver.url(), &["wave.*", "tenant.created"]).await;

    app.register_tenants(&secrets, "wh", 4, 1).await;
    let id = app
        .start_wave(json!({"batch_size": 2, "soak_seconds": 0}))
        .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    let timeline = app.wave_events(&id).await;
    let expected = timeline.len() + 4;
    let all_in = wait_until(Duration::from_secs(20), || async {
        receiver.delivered().len() >= expected
    })
    .await;
    let got = receiver.got();

    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert!(
        all_in,
        "{} of {expected} deliveries arrived",
        receiver.delivered().len()
    );
    let types: Vec<String> = got.iter().map(|r| r.event.clone()).collect();
    assert_eq!(types.iter().filter(|t| *t == "tenant.created").count(), 4);
    assert_eq!(
        types.iter().filter(|t| t.starts_with("wave.")).count(),
        timeline.len()
    );
    assert!(
        !types.iter().any(|t| t == "tenant.migrated"),
        "not subscribed: {types:?}"
    );
    for r in &got {
        assert!(verifies(r, KEY), "bad signature on {r:?}");
        let text = String::from_utf8(r.body.clone()).unwrap();
        for secret in [KEY, "postgres://", "password", "unused-with-trust-auth"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["type"], r.event.as_str());
        assert_eq!(body["delivery_id"], r.delivery.as_str());
    }
    let (_, hook) = app.call(Method::GET, "/v1/webhooks/ops", None).await;
    assert_eq!(hook["deliveries"]["delivered"], expected as i64, "{hook}");
    assert_eq!(hook["deliveries"]["dead"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_filters_by_type_prefix_tenant_wave_and_actor_and_pages_newest_first() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "fd", 3, 1).await;
    let id = app
        .start_wave(json!({"batch_size": 2, "soak_seconds": 0}))
        .await;
    app.wait_for_wave_state(&id, WAVE_DONE).await;
    let feed = |q: String| {
        let app = &app;
        async move {
            app.call(Method::GET, &format!("/v1/events?{q}"), None)
                .await
        }
    };

    let (_, all) = feed("limit=500".into()).await;
    let (_, waves) = feed("type=wave.*".into()).await;
    let (_, migrated) = feed(format!("type=tenant.migrated&wave={id}")).await;
    let (_, one) = feed(format!("tenant={}", tenants[0].slug)).await;
    let (_, engine) = feed("actor=drover&type=wave.*".into()).await;
    let (_, page1) = feed("limit=2".into()).await;
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = feed(format!("limit=2&cursor={cursor}")).await;
    let (bad, err) = feed("type=wave.nope".into()).await;

    let items = |v: &Value| v["items"].as_array().unwrap().clone();
    let order: Vec<(chrono::DateTime<chrono::Utc>, i64)> = items(&all)
        .iter()
        .map(|e| {
            let at = e["created_at"].as_str().unwrap().parse().unwrap();
            (at, e["id"].as_i64().unwrap())
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] > w[1]),
        "newest first by (created_at, id): {order:?}"
    );
    assert!(items(&waves)
        .iter()
        .all(|e| e["type"].as_str().unwrap().starts_with("wave.")));
    assert_eq!(items(&waves).len(), app.wave_events(&id).await.len());
    assert_eq!(items(&migrated).len(), 3, "{migrated:#}");
    assert!(items(&migrated).iter().all(|e| e["wave_id"] == id.as_str()));
    assert!(items(&one)
        .iter()
        .all(|e| e["tenant"] == tenants[0].slug.as_str()));
    assert!(items(&engine).iter().all(|e| e["actor"] == "drover"));
    assert!(items(&page1)[1]["id"].as_i64() > items(&page2)[0]["id"].as_i64());
    assert_eq!(items(&page2)[0]["id"], items(&all)[2]["id"]);
    assert_eq!(bad, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("wave.nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhook_input_is_a_clear_4xx_and_nothing_is_stored() {
    let secrets = SecretsDir::new();
    secrets.put("webhooks/key", KEY);
    let app = TestApp::builder()
        .env("DROVER_SECRETS_DIR", secrets.path())
        .spawn()
        .await;
    let good = json!({"name": "ok", "url": "https://example.com/h", "events": ["wave.*"], "secret_ref": "file:webhooks/key"});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let cases = [
        ("url", with("url", json!("ftp://example.com/h"))),
        ("url", with("url", json!("https://user:pw@example.com/h"))),
        ("events", with("events", json!(["wave.exploded"]))),
        ("events", with("events", json!([]))),
        (
            "secret_ref",
            with("secret_ref", json!("env:DROVER_ADMIN_TOKEN")),
        ),
        (
            "secret_ref",
            with("secret_ref", json!("file:../etc/passwd")),
        ),
        (
            "secret_ref",
            with("secret_ref", json!("file:webhooks/missing")),
        ),
        (
            "secret_ref",
            with("secret_ref", json!("postgres://u:p@h/db")),
        ),
        ("name", with("name", json!("Not A Name"))),
    ];

    for (field, body) in cases {
        let (status, err) = app
            .call(Method::POST, "/v1/webhooks", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (_, list) = app.call(Method::GET, "/v1/webhooks", None).await;
    assert_eq!(list, json!([]));
    let (dup1, _) = app
        .call(Method::POST, "/v1/webhooks", Some(good.clone()))
        .await;
    let (dup2, dup) = app.call(Method::POST, "/v1/webhooks", Some(good)).await;
    assert_eq!(dup1, StatusCode::CREATED);
    assert_eq!(dup2, StatusCode::CONFLICT, "{dup}");
    let (missing, _) = app.call(Method::DELETE, "/v1/webhooks/nope", None).await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_format_this_drover_does_not_know_fails_its_deliveries_naming_it_and_sends_nothing(
) {
    let secrets = SecretsDir::new();
    secrets.put("webhooks/key", KEY);
    let app = TestApp::builder()
        .env("DROVER_SECRETS_DIR", secrets.path())
        .spawn()
        .await;
    let receiver = Receiver::start(Mode::Ok).await;
    add_webhook(&app, "future", &receiver.url(), &["tenant.created"]).await;
    let (status, chat) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(
                json!({"name": "chat", "url": receiver.url(), "events": ["tenant.created"],
                        "secret_ref": "file:webhooks/key", "format": "slack"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{chat}");
    // As a newer replica (or a hand edit) would leave it: the control schema takes any name.
    app.control_db()
        .await
        .batch_execute("UPDATE control_plane.webhooks SET format = 'xml' WHERE name = 'future'")
        .await
        .unwrap();

    app.create_tenant(&tenant_body("acme")).await;
    let failed = wait_until(Duration::from_secs(20), || async {
        let (_, hook) = app.call(Method::GET, "/v1/webhooks/future", None).await;
        hook["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("\"xml\""))
    })
    .await;
    let slack_sent = wait_until(Duration::from_secs(20), || async {
        !receiver.got().is_empty()
    })
    .await;
    let (_, hook) = app.call(Method::GET, "/v1/webhooks/future", None).await;
    let (_, tested) = app
        .call(Method::POST, "/v1/webhooks/future/test", None)
        .await;
    let got = receiver.got();

    assert!(failed, "{hook}");
    assert_eq!(hook["format"], "xml", "shown as stored: {hook}");
    assert_eq!(hook["deliveries"]["delivered"], 0, "{hook}");
    assert!(
        hook["last_error"]
            .as_str()
            .unwrap()
            .contains("unknown webhook format"),
        "{hook}"
    );
    assert_eq!(tested["ok"], false, "{tested}");
    assert!(
        tested["error"].as_str().unwrap().contains("\"xml\""),
        "{tested}"
    );
    assert!(slack_sent);
    assert_eq!(
        got.len(),
        1,
        "only the slack subscription's delivery: {got:?}"
    );
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("drover: tenant acme created"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_10_mb_is_read_only_in_part_and_the_test_endpoint_says_why() {
    let secrets = SecretsDir::new();
    secrets.put("webhooks/key", KEY);
    let app = TestApp::builder()
        .env("DROVER_SECRETS_DIR", secrets.path())
        .spawn()
        .await;
    let receiver = Receiver::start(Mode::Huge).await;
    add_webhook(&app, "huge", &receiver.url(), &["*"]).await;

    let started = Instant::now();
    let (status, result) = app.call(Method::POST, "/v1/webhooks/huge/test", None).await;

    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["ok"], false);
    assert_eq!(result["status"], 500);
    let error = result["error"].as_str().unwrap();
    assert!(
        error.len() < 400,
        "the answer was cut: {} bytes",
        error.len()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let got = receiver.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event, "webhook.test");
    assert!(verifies(&got[0], KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_delays_neither_a_wave_nor_another_subscriber() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    secrets.put("webhooks/key", KEY);
    let app = wave_app(&migrations, &secrets, &[("DROVER_WEBHOOK_TIMEOUT", "30s")]).await;
    let (hang, ok) = (
        Receiver::start(Mode::Hang).await,
        Receiver::start(Mode::Ok).await,
    );
    add_webhook(&app, "hangs", &hang.url(), &["*"]).await;
    add_webhook(&app, "fine", &ok.url(), &["*"]).await;

    app.register_tenants(&secrets, "hg", 6, 1).await;
    let started = Instant::now();
    let id = app
        .start_wave(json!({"batch_size": 3, "soak_seconds": 0}))
        .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    let wave_took = started.elapsed();
    let events = connect(&app.database_url)
        .await
        .query_one("SELECT (SELECT count(*) FROM control_plane.tenant_events) + (SELECT count(*) FROM control_plane.wave_events)", &[])
        .await
        .unwrap()
        .get::<_, i64>(0) as usize;
    let all_in = wait_until(Duration::from_secs(10), || async {
        ok.delivered().len() >= events
    })
    .await;
    let fine_took = started.elapsed();

    println!("wave with a hanging subscriber: {wave_took:?}; the other subscriber had all {events} events after {fine_took:?}; the hanging one got {} requests", hang.got().len());
    assert_eq!(wave["state"], "completed");
    assert!(
        wave_took < Duration::from_secs(25),
        "the wave took {wave_took:?}"
    );
    assert!(
        all_in,
        "{} of {events} reached the healthy subscriber",
        ok.delivered().len()
    );
    assert!(
        fine_took < Duration::from_secs(30),
        "the healthy subscriber waited for the hanging one"
    );
    assert!(
        hang.got().len() <= 8,
        "at most 8 sends in flight per subscription: {}",
        hang.got().len()
    );
}

/// Reads SSE events from `resp` until `n` arrived; returns (id, type) pairs.
async fn read_sse(resp: &mut reqwest::Response, n: usize, deadline: Instant) -> Vec<i64> {
    let (mut buf, mut ids, mut id) = (String::new(), Vec::new(), None::<i64>);
    while ids.len() < n && Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_secs(2), resp.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else {
            continue;
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            let line = line.trim_end();
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if line.is_empty() {
                if let Some(i) = id.take() {
                    ids.push(i);
                    if ids.len() >= n {
                        break;
                    }
                }
            }
        }
    }
    ids
}

async fn open_stream(app: &TestApp, query: &str, last: Option<i64>) -> reqwest::Response {
    let mut req = app.req(Method::GET, &format!("/v1/events/stream?{query}"));
    if let Some(l) = last {
        req = req.header("Last-Event-ID", l.to_string());
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumed_with_last_event_id_sees_each_of_1000_parallel_changes_exactly_once() {
    let app = spawn_app().await;
    for i in 0..20 {
        assert_eq!(
            app.create_tenant(&tenant_body(&format!("st-{i:02}")))
                .await
                .status(),
            201
        );
    }
    let control = connect(&app.database_url).await;
    let first: i64 = control
        .query_one("SELECT max(id) FROM control_plane.tenant_events", &[])
        .await
        .unwrap()
        .get(0);
    let ids: Vec<uuid::Uuid> = control
        .query("SELECT id FROM control_plane.tenants ORDER BY slug", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut stream = open_stream(&app, "type=tenant.*", Some(first)).await;

    // 1,000 changes from 20 connections; each transaction takes its event id, then waits
    // a little before committing, so commits land out of id order.
    let burst = tokio::spawn({
        let (url, ids) = (app.database_url.clone(), ids.clone());
        async move {
            let mut writers = Vec::new();
            for (w, tenant) in ids.iter().copied().enumerate().take(20) {
                let url = url.clone();
                writers.push(tokio::spawn(async move {
                    let mut c = connect(&url).await;
                    for i in 0..50u64 {
                        let tx = c.transaction().await.unwrap();
                        tx.execute("UPDATE control_plane.tenants SET display_name = $2 WHERE id = $1", &[&tenant, &format!("change {i}")]).await.unwrap();
                        tx.execute("INSERT INTO control_plane.tenant_events (tenant_id, event_type, actor, payload) VALUES ($1, 'updated', 'test', '{\"changed\": [\"display_name\"]}')", &[&tenant]).await.unwrap();
                        tokio::time::sleep(Duration::from_millis((i * 7 + w as u64 * 3) % 13)).await;
                        tx.commit().await.unwrap();
                    }
                }));
            }
            for w in writers {
                w.await.unwrap();
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = read_sse(&mut stream, 300, deadline).await;
    drop(stream);
    let resume = *seen.last().unwrap();
    let mut again = open_stream(&app, "type=tenant.*", Some(resume)).await;
    burst.await.unwrap();
    seen.extend(read_sse(&mut again, 1000 - seen.len(), deadline).await);
    // Nothing more arrives after the thousandth.
    let extra = read_sse(&mut again, 1, Instant::now() + Duration::from_secs(3)).await;

    let written: BTreeSet<i64> = control
        .query(
            "SELECT id FROM control_plane.tenant_events WHERE id > $1",
            &[&first],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    let out_of_order = seen.windows(2).filter(|w| w[1] < w[0]).count();
    println!(
        "stream: {} events, {} unique, {out_of_order} sent after a higher id (commit order)",
        seen.len(),
        unique.len()
    );
    assert_eq!(written.len(), 1000);
    assert_eq!(seen.len(), 1000, "a duplicate or a gap");
    assert_eq!(unique, written);
    assert!(extra.is_empty(), "sent again: {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_deliveries_survive_a_kill_9_and_arrive_with_the_same_delivery_id() {
    let (migrations, secrets) = (counted_migrations_dir(), SecretsDir::new());
    secrets.put("webhooks/key", KEY);
    let control = fresh_control_database().await;
    let env = [
        ("DROVER_MIGRATIONS_DIR", migrations.path()),
        ("DROVER_SECRETS_DIR", secrets.path()),
        ("DROVER_RETRY_BACKOFF", "100ms"),
        ("DROVER_WEBHOOK_RETRY_BACKOFF", "200ms"),
        ("DROVER_WEBHOOK_TIMEOUT", "5s"),
    ];
    let mut first = Daemon::start(&control, "first", &env).await;
    let receiver = Receiver::start(Mode::Unavailable).await;
    add_webhook(&first, "ops", &receiver.url(), &["*"]).await;

    first.register_tenants(&secrets, "k9w", 4, 1).await;
    let id = first
        .start_wave(json!({"batch_size": 2, "soak_seconds": 0}))
        .await;
    first.wait_for_wave_state(&id, WAVE_DONE).await;
    let failed_some = wait_until(Duration::from_secs(10), || async {
        receiver.got().len() >= 10
    })
    .await;
    first.kill9();
    let second = Daemon::start(&control, "second", &env).await;
    receiver.set(Mode::Ok);
    let db = connect(&control).await;
    let events: i64 = db
        .query_one("SELECT (SELECT count(*) FROM control_plane.tenant_events) + (SELECT count(*) FROM control_plane.wave_events)", &[])
        .await
        .unwrap()
        .get(0);
    let all_in = wait_until(Duration::from_secs(60), || async {
        receiver.delivered().len() as i64 >= events
    })
    .await;
    // Every delivery recorded: nothing is claimed again, so a second acceptance of any
    // delivery over its whole retry period would be in `got` by now (the receiver answers
    // at once; the first replica's unanswered claims died with it).
    let recorded = wait_until(Duration::from_secs(30), || async {
        db.query_one(
            "SELECT count(*) AS n FROM control_plane.webhook_deliveries WHERE state <> 'delivered'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>("n")
            == 0
    })
    .await;

    let got = receiver.got();
    let mut ids_by_event: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in &got {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        ids_by_event
            .entry(body["id"].to_string())
            .or_default()
            .insert(r.delivery.clone());
    }
    let retried = got.iter().filter(|r| r.answered != 200).count();
    println!(
        "{events} events, {} requests ({retried} refused while down), {} delivered",
        got.len(),
        receiver.delivered().len()
    );
    assert!(failed_some, "the receiver saw no attempt while down");
    assert!(
        all_in,
        "{} of {events} delivered after the restart",
        receiver.delivered().len()
    );
    assert_eq!(ids_by_event.len() as i64, events);
    assert!(
        ids_by_event.values().all(|ids| ids.len() == 1),
        "one delivery id per event: {ids_by_event:?}"
    );
    assert!(recorded, "deliveries left unrecorded");
    let delivered = receiver.delivered();
    let accepted_twice: Vec<&String> = delivered
        .iter()
        .filter(|(_, accepted)| accepted.len() > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        accepted_twice.is_empty(),
        "accepted more than once: {accepted_twice:?}"
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_send_each_delivery_once() {
    let secrets = SecretsDir::new();
    secrets.put("webhooks/key", KEY);
    let control = fresh_control_database().await;
    let env = [("DROVER_SECRETS_DIR", secrets.path())];
    let a = Daemon::start(&control, "a", &env).await;
    let b = Daemon::start(&control, "b", &env).await;
    let receiver = Receiver::start(Mode::Ok).await;
    add_webhook(&a, "ops", &receiver.url(), &["tenant.*"]).await;

    for i in 0..200 {
        let replica = if i % 2 == 0 { &a } else { &b };
        let resp = replica
            .create_tenant(&tenant_body(&format!("rp-{i:03}")))
            .await;
        assert_eq!(resp.status(), 201);
    }
    let all_in = wait_until(Duration::from_secs(30), || async {
        receiver.delivered().len() >= 200
    })
    .await;
    // Duplicates are looked for over every attempt the outbox made, not in a window: once
    // every delivery is recorded `delivered` nothing claims it again, and each claim added
    // an attempt before it sent, so the receiver is done when it has one request per
    // attempt.
    let db = connect(&control).await;
    let attempts = || async {
        db.query_one(
            "SELECT count(*) FILTER (WHERE state <> 'delivered') AS open, \
               coalesce(sum(attempts), 0)::bigint AS attempts \
             FROM control_plane.webhook_deliveries",
            &[],
        )
        .await
        .map(|r| (r.get::<_, i64>("open"), r.get::<_, i64>("attempts")))
        .unwrap()
    };
    let settled = wait_until(Duration::from_secs(30), || async {
        let (open, sent) = attempts().await;
        open == 0 && receiver.got().len() as i64 == sent
    })
    .await;

    let requests = receiver.got().len();
    let delivered = receiver.delivered();
    println!(
        "two replicas: 200 events, {requests} requests, {} distinct delivery ids",
        delivered.len()
    );
    assert!(all_in);
    assert!(
        settled,
        "deliveries still open or requests in flight: {:?}",
        attempts().await
    );
    assert_eq!(delivered.len(), 200);
    assert_eq!(attempts().await.1, 200, "a delivery was claimed twice");
    assert_eq!(requests, 200, "a delivery was sent twice");
    drop((a, b));
}
