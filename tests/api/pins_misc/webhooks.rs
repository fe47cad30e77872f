//! Webhook retries to their end: a delivery the receiver never accepts is given up
//! (`dead`) after `webhook_give_up_after`, and one accepted after a few refusals arrives
//! exactly once however long its retries took.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{tenant_body, wait_until, SecretsDir, TestApp};

/// One request the receiver got: its delivery id, the event id in its body, the status
/// it was answered with.
#[derive(Debug, Clone)]
struct Request {
    delivery: String,
    event: i64,
    answered: u16,
}

/// An HTTP receiver that refuses (500) the first `refusals` requests of every delivery id
/// and accepts the rest; `u32::MAX` refuses everything.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    refusals: u32,
    got: Arc<Mutex<Vec<Request>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    let delivery = headers
        .get("x-drover-delivery")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let event = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|b| b["id"].as_i64())
        .unwrap_or(-1);
    let mut got = r.got.lock().unwrap();
    let before = got.iter().filter(|g| g.delivery == delivery).count() as u32;
    let status = if before < r.refusals {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    got.push(Request {
        delivery,
        event,
        answered: status.as_u16(),
    });
    status
}

impl Receiver {
    async fn start(refusals: u32) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap(),
            refusals,
            got: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    fn got(&self) -> Vec<Request> {
        self.got.lock().unwrap().clone()
    }
}

/// A daemon retrying failed deliveries 100 ms apart (doubling), giving up after `give_up`,
/// with a subscription `ops` to `tenant.*` pointing at `receiver`.
async fn app_sending_to(receiver: &Receiver, give_up: &str) -> (TestApp, SecretsDir) {
    let secrets = SecretsDir::new();
    secrets.put("webhooks/key", "whsec-pins-key");
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_WEBHOOK_RETRY_BACKOFF", "100ms"),
            ("DROVER_WEBHOOK_GIVE_UP_AFTER", give_up),
            ("DROVER_WEBHOOK_TIMEOUT", "5s"),
        ])
        .spawn()
        .await;
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(
                json!({"name": "ops", "url": format!("http://{}/hook", receiver.addr),
                        "events": ["tenant.*"], "secret_ref": "file:webhooks/key"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (app, secrets)
}

/// Each delivery row: (state, attempts, seconds from its event to its end).
async fn deliveries(app: &TestApp) -> Vec<(String, i32, Option<f64>)> {
    app.control_db()
        .await
        .query(
            "SELECT state, attempts, \
               extract(epoch FROM finished_at - created_at)::float8 AS took \
             FROM control_plane.webhook_deliveries ORDER BY event_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("state"), r.get("attempts"), r.get("took")))
        .collect()
}

/// Waits until the receiver has seen one request per claim the outbox recorded (a claim
/// adds an attempt before it sends), so no request is still on its way.
async fn all_requests_arrived(app: &TestApp, receiver: &Receiver) -> bool {
    wait_until(Duration::from_secs(10), || async {
        let attempts: i32 = deliveries(app).await.iter().map(|d| d.1).sum();
        receiver.got().len() == attempts as usize
    })
    .await
}

// Pins: retrying forever (a failed delivery never becomes `dead`), giving up early (dead
// before `webhook_give_up_after` has passed), and sending a dead delivery again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_the_receiver_always_refuses_is_dead_after_the_give_up_period_and_never_sent_again(
) {
    let receiver = Receiver::start(u32::MAX).await;
    let (app, _secrets) = app_sending_to(&receiver, "2s").await;
    let created = app.create_tenant(&tenant_body("refused")).await;
    assert_eq!(created.status(), StatusCode::CREATED);

    let dead = wait_until(Duration::from_secs(30), || async {
        deliveries(&app)
            .await
            .first()
            .is_some_and(|d| d.0 == "dead")
    })
    .await;
    let arrived = all_requests_arrived(&app, &receiver).await;
    let at_death = receiver.got().len();
    // The bound watched after it died: 1.5 s, one worker poll (1 s) plus margin and fifteen
    // first-retry delays; a delivery still being retried would have been sent again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later = receiver.got().len();

    assert!(dead, "never given up: {:?}", deliveries(&app).await);
    assert!(arrived, "requests in flight after the delivery died");
    let (state, attempts, took) = deliveries(&app).await[0].clone();
    assert_eq!(state, "dead");
    assert!(
        attempts >= 2,
        "retried before giving up: {attempts} attempts"
    );
    assert!(
        took.unwrap_or_default() >= 2.0,
        "given up only once 2 s had passed, not after {took:?} s"
    );
    assert_eq!(at_death, attempts as usize, "one request per attempt");
    assert!(receiver.got().iter().all(|r| r.answered == 500));
    assert_eq!(later, at_death, "a dead delivery was sent again");
    // The gauge is a snapshot refreshed in the background (every 5 s): wait for it.
    wait_until(Duration::from_secs(15), || async {
        app.metric("drover_webhook_dead_deliveries").await == 1.0
    })
    .await;
    assert_eq!(app.metric("drover_webhook_dead_deliveries").await, 1.0);
}

// Pins: a delivery sent again after the receiver accepted it (its success not recorded, or
// a retry scheduled anyway), whenever in its retry period that happens, and a retry that
// gets a new delivery id. The check covers every attempt the outbox made, not a window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_accepted_after_two_refusals_each_arrive_exactly_once_over_their_whole_retry_period()
{
    let receiver = Receiver::start(2).await;
    let (app, _secrets) = app_sending_to(&receiver, "1h").await;
    for i in 0..5 {
        let created = app
            .create_tenant(&tenant_body(&format!("retried-{i}")))
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }

    let finished = wait_until(Duration::from_secs(60), || async {
        let d = deliveries(&app).await;
        d.len() == 5 && d.iter().all(|(state, _, _)| state == "delivered")
    })
    .await;
    let arrived = all_requests_arrived(&app, &receiver).await;

    assert!(finished, "not all delivered: {:?}", deliveries(&app).await);
    assert!(
        arrived,
        "requests still in flight after every delivery was recorded"
    );
    let mut by_event: BTreeMap<i64, Vec<Request>> = BTreeMap::new();
    for r in receiver.got() {
        by_event.entry(r.event).or_default().push(r);
    }
    assert_eq!(by_event.len(), 5, "{by_event:#?}");
    for (event, requests) in &by_event {
        let answers: Vec<u16> = requests.iter().map(|r| r.answered).collect();
        assert_eq!(answers, [500, 500, 200], "event {event}: {requests:#?}");
        assert!(
            requests.iter().all(|r| r.delivery == requests[0].delivery),
            "one delivery id for every attempt of event {event}: {requests:#?}"
        );
    }
    assert!(deliveries(&app).await.iter().all(|d| d.1 == 3));
}
