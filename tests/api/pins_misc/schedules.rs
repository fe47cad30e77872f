//! Schedules: what the scheduler does with missed ticks, with a tick while the previous
//! wave runs (`queue`), with a disabled schedule, and on a replica that does not lead.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{
    counted_migrations_dir, fresh_control_database, wait_until, MigrationsDir, SecretsDir, TestApp,
};

const QUICK_WAVE: &str = r#"{"soak_seconds": 0, "canary": {"count": 0}}"#;

/// One row of `schedule_fires`.
#[derive(Debug, Clone)]
struct Fire {
    tick: DateTime<Utc>,
    outcome: String,
    wave: Option<Uuid>,
    detail: Option<String>,
    handled_by: String,
    handled_at: DateTime<Utc>,
}

/// The fire log of `schedule`, oldest tick first.
async fn fires(app: &TestApp, schedule: &str) -> Vec<Fire> {
    app.control_db()
        .await
        .query(
            "SELECT tick, outcome, wave_id, detail, handled_by, handled_at \
             FROM control_plane.schedule_fires WHERE schedule_name = $1 ORDER BY tick",
            &[&schedule],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| Fire {
            tick: r.get("tick"),
            outcome: r.get("outcome"),
            wave: r.get("wave_id"),
            detail: r.get("detail"),
            handled_by: r.get("handled_by"),
            handled_at: r.get("handled_at"),
        })
        .collect()
}

/// Waves a schedule created.
async fn waves_of(app: &TestApp, schedule: &str) -> i64 {
    app.control_db()
        .await
        .query_one(
            "SELECT count(*) AS n FROM control_plane.waves WHERE created_by = $1",
            &[&format!("schedule:{schedule}")],
        )
        .await
        .unwrap()
        .get("n")
}

/// The control DB's clock (the one `schedule_fires.handled_at` is written with).
async fn db_now(app: &TestApp) -> DateTime<Utc> {
    app.control_db()
        .await
        .query_one("SELECT now() AS now", &[])
        .await
        .unwrap()
        .get("now")
}

/// A daemon that elects itself quickly, with two registered tenants (`canaries` flagged).
async fn app_with_tenants(m: &MigrationsDir, s: &SecretsDir, canaries: usize) -> TestApp {
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_MIGRATIONS_DIR", m.path()),
            ("DROVER_SECRETS_DIR", s.path()),
            ("DROVER_LEADER_TTL", "3s"),
        ])
        .spawn()
        .await;
    app.register_tenants(s, "sch", 2, canaries).await;
    app
}

async fn create(app: &TestApp, body: Value) {
    let resp = app.create_schedule(&body).await;
    let status = resp.status();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        resp.text().await.unwrap()
    );
}

// Pins: replaying missed ticks in a burst (every missed tick fires, or the oldest fires
// instead of the latest), and ignoring `misfire_grace_seconds` (a tick older than the
// grace still starts a wave). The outage is what the control DB holds after one: an
// enabled schedule whose `next_fire_at` lies far in the past.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_only_the_latest_missed_tick_fires_and_one_older_than_the_grace_is_skipped_missed(
) {
    let (m, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = app_with_tenants(&m, &secrets, 0).await;
    // One tenant each, so neither schedule's wave can stand in the other's way.
    let on = |slug: &str| json!({"selector": {"slugs": [slug]}, "soak_seconds": 0, "canary": {"count": 0}});
    // Disabled while the outage is staged, so the scheduler cannot see a half-made one.
    create(&app, json!({"name": "catch-up", "cron": "*/10 * * * * *", "misfire_grace_seconds": 30, "template": on("sch-000"), "enabled": false})).await;
    create(&app, json!({"name": "yearly", "cron": "0 0 1 1 *", "misfire_grace_seconds": 300, "template": on("sch-001"), "enabled": false})).await;
    let db = app.control_db().await;
    // Thirty ticks of `catch-up` were missed (the latest less than 10 s ago, within the
    // 30 s grace); `yearly`'s only missed tick is this year's, far past its 300 s grace.
    db.batch_execute(
        "UPDATE control_plane.schedules SET enabled = true, \
           next_fire_at = to_timestamp(floor(extract(epoch FROM now()) / 10) * 10) - interval '300 seconds' \
         WHERE name = 'catch-up'; \
         UPDATE control_plane.schedules SET enabled = true, \
           next_fire_at = date_trunc('year', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' \
         WHERE name = 'yearly';",
    )
    .await
    .unwrap();

    let handled = wait_until(Duration::from_secs(20), || async {
        !fires(&app, "catch-up").await.is_empty() && !fires(&app, "yearly").await.is_empty()
    })
    .await;

    assert!(handled, "the scheduler never handled the missed ticks");
    let caught_up = fires(&app, "catch-up").await;
    let first = &caught_up[0];
    let first_pass: Vec<&Fire> = caught_up
        .iter()
        .filter(|f| f.handled_at == first.handled_at)
        .collect();
    assert_eq!(
        first_pass.len(),
        1,
        "one tick handled, no burst: {caught_up:#?}"
    );
    assert_eq!(first.outcome, "fired", "{first:?}");
    assert!(first.wave.is_some(), "{first:?}");
    let age = first.handled_at - first.tick;
    assert!(
        // (-1 s: the scheduler reads its clock a moment after its transaction began.)
        age > chrono::Duration::seconds(-1) && age < chrono::Duration::seconds(10),
        "the tick fired is the latest due one, not an older missed one: {first:?}"
    );
    let yearly = fires(&app, "yearly").await;
    assert_eq!(yearly.len(), 1, "{yearly:#?}");
    assert_eq!(yearly[0].outcome, "skipped_missed", "{yearly:#?}");
    assert_eq!(yearly[0].wave, None);
    let detail = yearly[0].detail.clone().unwrap_or_default();
    assert!(detail.contains("late (grace 300s)"), "{detail}");
    assert_eq!(
        waves_of(&app, "yearly").await,
        0,
        "a tick past its grace starts nothing"
    );
    let view: Value = app.get_json("/v1/schedules/yearly").await;
    let next: DateTime<Utc> = view["next_fire_at"].as_str().unwrap().parse().unwrap();
    assert!(
        next > Utc::now(),
        "the schedule moved on to next year: {view}"
    );
}

// Pins: `on_overlap: queue` behaving like `skip` (the tick is dropped and recorded as
// `skipped_overlap`), like no policy at all (a second wave is attempted while the first
// runs, and fails on the overlap), or dropping the queued tick for good (nothing fires
// once the first wave has ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_tick_waits_while_the_previous_wave_runs_and_fires_once_it_has_ended() {
    let (m, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = app_with_tenants(&m, &secrets, 1).await;
    // The canary's hour-long soak keeps the first wave unfinished until it is aborted.
    create(&app, json!({"name": "queued", "cron": "* * * * * *", "on_overlap": "queue", "template": {"soak_seconds": 3600}})).await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            !fires(&app, "queued").await.is_empty()
        })
        .await,
        "the first tick never fired"
    );
    let first = fires(&app, "queued").await[0].clone();
    let wave = first
        .wave
        .expect("the first tick started a wave")
        .to_string();
    app.wait_for_wave_state(&wave, &["soaking"]).await;
    let db = app.control_db().await;

    // Queued: the schedule stays on its due tick while ticks keep passing.
    let held = wait_until(Duration::from_secs(20), || async {
        db.query_one(
            "SELECT next_fire_at < now() - interval '3 seconds' AS held \
             FROM control_plane.schedules WHERE name = 'queued'",
            &[],
        )
        .await
        .unwrap()
        .get("held")
    })
    .await;
    let while_running = fires(&app, "queued").await;
    app.wave_action(&wave, "abort", "ops").await;
    app.wait_for_wave_state(&wave, &["aborted"]).await;
    let fired_again = wait_until(Duration::from_secs(20), || async {
        fires(&app, "queued").await.len() >= 2
    })
    .await;

    assert!(
        held,
        "the queued tick was not held on its due time: {while_running:#?}"
    );
    assert_eq!(
        while_running.len(),
        1,
        "nothing recorded while the first wave runs: {while_running:#?}"
    );
    assert!(
        fired_again,
        "the queued tick never fired after the wave ended"
    );
    let after = fires(&app, "queued").await;
    let second = &after[1];
    assert_eq!(second.outcome, "fired", "{after:#?}");
    let second_wave = second.wave.expect("the queued tick started a wave");
    assert_ne!(second_wave.to_string(), wave);
    assert!(
        after.iter().all(|f| f.outcome == "fired"),
        "a queued tick is neither skipped nor failed: {after:#?}"
    );
}

// Pins: the scheduler's due query forgetting `enabled` (a schedule created disabled fires,
// or a schedule disabled by PATCH keeps firing). The enabled schedule beside them shows
// the scheduler was running the whole time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_schedule_never_fires_while_an_enabled_one_keeps_firing() {
    let (m, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let app = app_with_tenants(&m, &secrets, 0).await;
    let template: Value = serde_json::from_str(QUICK_WAVE).unwrap();
    create(
        &app,
        json!({"name": "off", "cron": "* * * * * *", "enabled": false, "template": template}),
    )
    .await;
    create(
        &app,
        json!({"name": "paused", "cron": "* * * * * *", "template": template}),
    )
    .await;
    create(
        &app,
        json!({"name": "on", "cron": "* * * * * *", "template": template}),
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            !fires(&app, "paused").await.is_empty()
        })
        .await,
        "the schedule to pause never fired"
    );

    let patched = app
        .patch_json("/v1/schedules/paused", &json!({"enabled": false}))
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let disabled_at = db_now(&app).await;
    // Three more ticks of `on` handled after the PATCH: three scheduler passes since.
    let kept_going = wait_until(Duration::from_secs(20), || async {
        fires(&app, "on")
            .await
            .iter()
            .filter(|f| f.handled_at > disabled_at)
            .count()
            >= 3
    })
    .await;

    assert!(kept_going, "the enabled schedule stopped firing");
    assert_eq!(
        fires(&app, "off").await.len(),
        0,
        "created disabled, never fired"
    );
    assert_eq!(waves_of(&app, "off").await, 0);
    let after_pause: Vec<Fire> = fires(&app, "paused")
        .await
        .into_iter()
        .filter(|f| f.handled_at > disabled_at)
        .collect();
    assert!(
        after_pause.is_empty(),
        "fired after being disabled: {after_pause:#?}"
    );
}

/// The lease row: (holder while unexpired, term).
async fn lease(app: &TestApp) -> (Option<String>, i64) {
    let row = app
        .control_db()
        .await
        .query_one(
            "SELECT CASE WHEN expires_at > now() THEN holder END AS holder, term \
             FROM control_plane.leader",
            &[],
        )
        .await
        .unwrap();
    (row.get("holder"), row.get("term"))
}

// Pins: a scheduler that runs on every replica, not only on the lease holder. The primary
// key of `schedule_fires` hides that bug while the leader happens to reach each tick first,
// so the lease is first held by a third party: no replica leads, and a due schedule must
// not fire at all. Then the lease is freed: one replica takes it, and every tick from then
// on is handled by that replica (by `handled_by`, not just one row per tick), the ticks
// missed meanwhile collapsing into one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_fires_and_no_replica_fires_while_another_holds_the_lease() {
    let (m, secrets) = (counted_migrations_dir(), SecretsDir::new());
    let control = fresh_control_database().await;
    let replica = |id: &'static str| {
        TestApp::builder()
            .control_db(&control)
            .envs(&[
                ("DROVER_MIGRATIONS_DIR", m.path()),
                ("DROVER_SECRETS_DIR", secrets.path()),
                ("DROVER_LEADER_TTL", "3s"),
                ("DROVER_INSTANCE_ID", id),
            ])
            .spawn()
    };
    let (r1, r2) = (replica("r1").await, replica("r2").await);
    r1.register_tenants(&secrets, "ldr", 2, 0).await;
    // A third replica (say, one cut off from this network) holds the lease for an hour.
    r1.control_db()
        .await
        .batch_execute(
            "UPDATE control_plane.leader SET holder = 'elsewhere', term = term + 1, \
             expires_at = now() + interval '1 hour'",
        )
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || async {
            !r1.state.leadership.is_leader() && !r2.state.leadership.is_leader()
        })
        .await,
        "a replica still believes it leads"
    );
    let template: Value = serde_json::from_str(QUICK_WAVE).unwrap();
    create(
        &r1,
        json!({"name": "singleton", "cron": "* * * * * *", "template": template}),
    )
    .await;

    // Due for more than three seconds: three scheduler passes on each replica.
    let overdue = wait_until(Duration::from_secs(20), || async {
        r1.control_db()
            .await
            .query_one(
                "SELECT next_fire_at < now() - interval '3 seconds' AS overdue \
                 FROM control_plane.schedules WHERE name = 'singleton'",
                &[],
            )
            .await
            .unwrap()
            .get("overdue")
    })
    .await;
    let without_leader = fires(&r1, "singleton").await;
    r1.control_db()
        .await
        .batch_execute("UPDATE control_plane.leader SET expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    let resumed = wait_until(Duration::from_secs(20), || async {
        fires(&r1, "singleton").await.len() >= 4
    })
    .await;
    let (holder, term) = lease(&r1).await;

    assert!(
        without_leader.is_empty(),
        "fired while no replica held the lease: {without_leader:#?}"
    );
    assert!(overdue, "the schedule never became due");
    assert!(resumed, "the new leader never fired");
    let holder = holder.expect("a replica leads again");
    assert!(holder == "r1" || holder == "r2", "{holder}");
    let after = fires(&r1, "singleton").await;
    let handlers: Vec<&str> = after.iter().map(|f| f.handled_by.as_str()).collect();
    assert!(
        handlers.iter().all(|h| *h == holder),
        "every tick handled by the leader {holder} (term {term}): {handlers:?}"
    );
    let first_pass = after
        .iter()
        .filter(|f| f.handled_at == after[0].handled_at)
        .count();
    assert_eq!(
        first_pass, 1,
        "the missed ticks collapse into one: {after:#?}"
    );
    let (still, same_term) = lease(&r1).await;
    assert_eq!(
        (still.as_deref(), same_term),
        (Some(holder.as_str()), term),
        "the lease did not change hands during the test"
    );
}
