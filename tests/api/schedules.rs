//! Schedules: the API, firing on the leader, and exactly once per tick across replicas.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    connect, counted_migrations, fresh_control_database, spawn_app, wait_until, Daemon,
    MigrationsDir, SecretsDir, TestApp, ADMIN_TOKEN,
};

fn migrations() -> MigrationsDir {
    let files = counted_migrations(0.0);
    MigrationsDir::owned(&files)
}

const QUICK_WAVE: &str = r#"{"soak_seconds": 0, "canary": {"count": 0}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_validated_show_their_next_fire_times_and_can_be_triggered() {
    let (m, secrets) = (migrations(), SecretsDir::new());
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_MIGRATIONS_DIR", m.path()),
            ("DROVER_SECRETS_DIR", secrets.path()),
        ])
        .spawn()
        .await;
    app.register_tenants(&secrets, "sc", 2, 0).await;
    let template: Value = serde_json::from_str(QUICK_WAVE).unwrap();

    let bad_cron = app
        .create_schedule(&json!({"name": "nightly", "cron": "0 3 * * 8"}))
        .await;
    let bad_tz = app
        .create_schedule(
            &json!({"name": "nightly", "cron": "0 3 * * 1-5", "timezone": "Mars/Olympus"}),
        )
        .await;
    let created = app.create_schedule(&json!({"name": "nightly", "cron": "0 3 * * 1-5", "timezone": "Europe/Berlin", "template": template})).await;
    let duplicate = app
        .create_schedule(&json!({"name": "nightly", "cron": "@daily"}))
        .await;
    let disabled: Value = app
        .patch_json("/v1/schedules/nightly", &json!({"enabled": false}))
        .await
        .json()
        .await
        .unwrap();
    let triggered = app.post("/v1/schedules/nightly/trigger").await;

    assert_eq!(bad_cron.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err: Value = bad_cron.json().await.unwrap();
    assert_eq!(err["error"]["field"], "cron");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("day-of-week"),
        "{err}"
    );
    assert_eq!(bad_tz.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(created.status(), StatusCode::CREATED);
    let view: Value = created.json().await.unwrap();
    let fires: Vec<&str> = view["next_fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(fires.len(), 5);
    assert!(
        fires.iter().all(|f| f.contains("T03:00:00+0")),
        "03:00 Berlin time: {fires:?}"
    );
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);
    assert_eq!(disabled["enabled"], false);
    assert_eq!(triggered.status(), StatusCode::CREATED);
    let fired: Value = triggered.json().await.unwrap();
    let wave = fired["wave_id"].as_str().unwrap();
    let w: Value = app.get_json(&format!("/v1/waves/{wave}")).await;
    assert_eq!(w["created_by"], "schedule:nightly");
    let gone = app.delete("/v1/schedules/nightly").await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_fires_every_tick_once_and_a_new_leader_takes_over_after_kill_9_without_doubling_a_tick(
) {
    let (m, secrets) = (migrations(), SecretsDir::new());
    let control = fresh_control_database().await;
    let env = [
        ("DROVER_MIGRATIONS_DIR", m.path()),
        ("DROVER_SECRETS_DIR", secrets.path()),
        ("DROVER_LEADER_TTL", "3s"),
        ("DROVER_WAVE_LEASE", "2s"),
    ];
    let mut replicas = [
        Daemon::start(&control, "r1", &env).await,
        Daemon::start(&control, "r2", &env).await,
        Daemon::start(&control, "r3", &env).await,
    ];
    replicas[0].register_tenants(&secrets, "tick", 1, 0).await;
    let template: Value = serde_json::from_str(QUICK_WAVE).unwrap();
    let resp = replicas[0]
        .create_schedule(&json!({"name": "every-2s", "cron": "*/2 * * * * *", "template": template, "misfire_grace_seconds": 30}))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let db = connect(&control).await;
    let fired = || async {
        db.query_one(
            "SELECT count(*) FROM control_plane.schedule_fires WHERE outcome = 'fired'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
    };
    assert!(
        wait_until(Duration::from_secs(15), || async { fired().await >= 3 }).await,
        "the schedule never fired"
    );

    let leader: String = db
        .query_one("SELECT holder FROM control_plane.leader", &[])
        .await
        .unwrap()
        .get(0);
    let killed_at = chrono::Utc::now();
    let index = ["r1", "r2", "r3"]
        .iter()
        .position(|n| *n == leader)
        .expect("a replica leads");
    replicas[index].kill9();
    let before = fired().await;
    let kill_instant = std::time::Instant::now();
    let took_over = wait_until(Duration::from_secs(15), || async {
        let holder: Option<String> = db
            .query_one(
                "SELECT CASE WHEN expires_at > now() THEN holder END FROM control_plane.leader",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        holder.is_some_and(|h| h != leader)
    })
    .await;
    let takeover = kill_instant.elapsed();
    let kept_firing = wait_until(Duration::from_secs(15), || async {
        fired().await >= before + 3
    })
    .await;

    assert!(took_over, "no replica took over the lease");
    // The lease (3 s) runs out, then the next election round (every 1 s) takes it.
    assert!(
        takeover < Duration::from_secs(5),
        "takeover took {takeover:?}, more than TTL + one round"
    );
    assert!(
        kept_firing,
        "the schedule stopped firing after the leader died"
    );
    let per_tick: Vec<(i64,)> = db
        .query(
            "SELECT count(w.id) FROM control_plane.schedule_fires f \
             LEFT JOIN control_plane.waves w ON w.id = f.wave_id WHERE f.outcome = 'fired' GROUP BY f.tick",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0),))
        .collect();
    assert!(
        per_tick.iter().all(|(n,)| *n == 1),
        "every fired tick has exactly one wave: {per_tick:?}"
    );
    let waves: i64 = db
        .query_one(
            "SELECT count(*) FROM control_plane.waves WHERE created_by = 'schedule:every-2s'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(waves as usize, per_tick.len(), "no wave without its tick");
    let after_kill: i64 = db
        .query_one(
            "SELECT count(*) FROM control_plane.schedule_fires WHERE outcome = 'fired' AND tick > $1 AND handled_by <> $2",
            &[&killed_at, &leader],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        after_kill > 0,
        "ticks after the kill were fired by the new leader"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_with_sigterm_resigns_so_another_replica_leads_long_before_the_lease_ends()
{
    let control = fresh_control_database().await;
    let env = [("DROVER_LEADER_TTL", "30s")];
    let first = Daemon::start(&control, "first", &env).await;
    let db = connect(&control).await;
    let holder = || async {
        db.query_one(
            "SELECT CASE WHEN expires_at > now() THEN holder END FROM control_plane.leader",
            &[],
        )
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
    };
    assert!(
        wait_until(Duration::from_secs(10), || async {
            holder().await.as_deref() == Some("first")
        })
        .await
    );
    let second = Daemon::start(&control, "second", &env).await;
    // The roster row is written by the second replica's leader task, which may run a
    // moment after its HTTP port answers.
    wait_until(Duration::from_secs(10), || async {
        second.cluster().await["replicas"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    })
    .await;
    let cluster = second.cluster().await;

    let (clean, _) = first.terminate().await;
    let taken = wait_until(Duration::from_secs(15), || async {
        holder().await.as_deref() == Some("second")
    })
    .await;

    assert_eq!(cluster["leader"]["holder"], "first");
    assert_eq!(
        cluster["replicas"].as_array().unwrap().len(),
        2,
        "{cluster}"
    );
    assert!(clean);
    assert!(
        taken,
        "the second replica should lead within one renewal period (10 s), not after the 30 s lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_shows_disables_triggers_and_deletes_a_schedule() {
    let (m, secrets) = (migrations(), SecretsDir::new());
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_MIGRATIONS_DIR", m.path()),
            ("DROVER_SECRETS_DIR", secrets.path()),
        ])
        .spawn()
        .await;
    app.register_tenants(&secrets, "cs", 1, 0).await;
    let run = |args: Vec<&'static str>| {
        let mut cmd = crate::helpers::drover_cmd();
        cmd.env("DROVER_SERVER", app.base())
            .env("DROVER_ADMIN_TOKEN", ADMIN_TOKEN)
            .arg("schedules")
            .args(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };

    let created = run(vec![
        "create",
        "weekdays",
        "0 3 * * 1-5",
        "--timezone",
        "America/New_York",
        "--template",
        QUICK_WAVE,
    ])
    .await
    .unwrap();
    let shown = run(vec!["show", "weekdays"]).await.unwrap();
    let disabled = run(vec!["disable", "weekdays", "-o", "json"])
        .await
        .unwrap();
    let triggered = run(vec!["trigger", "weekdays"]).await.unwrap();
    let deleted = run(vec!["delete", "weekdays"]).await.unwrap();
    let listed = run(vec!["list"]).await.unwrap();

    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("MON,TUE,WED,THU,FRI") && text.contains("T03:00:00-0"),
        "{text}"
    );
    let json: Value = serde_json::from_slice(&disabled.stdout).unwrap();
    assert_eq!(json["enabled"], false);
    assert!(String::from_utf8_lossy(&triggered.stdout).contains("\"fired\""));
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("weekdays"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_while_the_previous_scheduled_wave_is_unfinished_is_skipped_and_recorded() {
    let (m, secrets) = (migrations(), SecretsDir::new());
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_MIGRATIONS_DIR", m.path()),
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_LEADER_TTL", "3s"),
        ])
        .spawn()
        .await;
    app.register_tenants(&secrets, "ovl", 2, 1).await;
    // Waves that soak for an hour stay unfinished, so every later tick overlaps.
    let created = app
        .create_schedule(
            &json!({"name": "busy", "cron": "* * * * * *", "template": {"soak_seconds": 3600}}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let db = app.control_db().await;
    let outcomes = || async {
        db.query(
            "SELECT outcome, count(*) FROM control_plane.schedule_fires WHERE schedule_name = 'busy' GROUP BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect::<Vec<_>>()
    };

    let skipped = wait_until(Duration::from_secs(20), || async {
        outcomes()
            .await
            .iter()
            .any(|(o, n)| o == "skipped_overlap" && *n >= 2)
    })
    .await;

    assert!(skipped, "{:?}", outcomes().await);
    let fired: i64 = outcomes()
        .await
        .iter()
        .filter(|(o, _)| o == "fired")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(fired, 1, "only the first tick started a wave");
}

#[tokio::test]
async fn bad_schedule_names_negative_grace_and_nul_bytes_are_422_not_500() {
    let app = spawn_app().await;
    app.create_schedule(&json!({"name": "ok", "cron": "@daily"}))
        .await;

    let upper = app
        .create_schedule(&json!({"name": "Upper", "cron": "@daily"}))
        .await;
    let grace = app
        .patch_json("/v1/schedules/ok", &json!({"misfire_grace_seconds": -1}))
        .await;
    let nul = app.get("/v1/tenants?q=%00").await;

    assert_eq!(upper.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(grace.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(nul.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_template_that_no_longer_parses_fails_its_tick_with_the_reason_and_starts_no_wave()
{
    let (m, secrets) = (migrations(), SecretsDir::new());
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_MIGRATIONS_DIR", m.path()),
            ("DROVER_SECRETS_DIR", secrets.path()),
            ("DROVER_LEADER_TTL", "3s"),
        ])
        .spawn()
        .await;
    app.register_tenants(&secrets, "brk", 2, 0).await;
    let created = app
        .create_schedule(&json!({"name": "broken", "cron": "* * * * * *", "enabled": false, "template": {"soak_seconds": 0}})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let db = app.control_db().await;
    // What an upgrade that renamed a field leaves behind.
    db.execute(
        "UPDATE control_plane.schedules SET template = '{\"canary_count\": 2}', enabled = true, \
         next_fire_at = now() WHERE name = 'broken'",
        &[],
    )
    .await
    .unwrap();
    let fires = || async {
        db.query(
            "SELECT outcome, detail, wave_id FROM control_plane.schedule_fires WHERE schedule_name = 'broken'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get::<_, String>("outcome"),
                r.get::<_, Option<String>>("detail"),
                r.get::<_, Option<uuid::Uuid>>("wave_id"),
            )
        })
        .collect::<Vec<_>>()
    };

    let handled = wait_until(Duration::from_secs(20), || async {
        fires().await.len() >= 2
    })
    .await;
    let triggered = app.post("/v1/schedules/broken/trigger").await;

    assert!(handled, "two ticks handled: {:?}", fires().await);
    for (outcome, detail, wave) in fires().await {
        assert_eq!(outcome, "failed");
        let detail = detail.unwrap_or_default();
        assert!(
            detail.contains("no longer parses") && detail.contains("canary_count"),
            "{detail}"
        );
        assert_eq!(wave, None);
    }
    let waves: i64 = db
        .query_one("SELECT count(*) FROM control_plane.waves", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(waves, 0, "a broken template starts nothing");
    let moved_on: bool = db
        .query_one(
            "SELECT next_fire_at > last_fire_at FROM control_plane.schedules WHERE name = 'broken'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(moved_on, "the schedule advances to its next tick");
    assert_eq!(triggered.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let err: Value = triggered.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_template", "{err}");
    assert_eq!(err["error"]["field"], "template", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("canary_count"),
        "{err}"
    );
}
