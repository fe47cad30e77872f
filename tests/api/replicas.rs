//! Real `drover serve` processes: crash in the middle of a wave, several replicas on one
//! wave, graceful shutdown handing work over.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    connect, counted_migrations, fresh_control_database, history, side_effects, wait_until, Daemon,
    MigrationsDir, SecretsDir,
};

fn slow_migrations() -> MigrationsDir {
    let files = counted_migrations(0.3);
    MigrationsDir::owned(&files)
}

fn env<'a>(m: &'a MigrationsDir, s: &'a SecretsDir) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DROVER_MIGRATIONS_DIR", m.path()),
        ("DROVER_SECRETS_DIR", s.path()),
        ("DROVER_WAVE_LEASE", "2s"),
        ("DROVER_RETRY_BACKOFF", "100ms"),
        ("DROVER_SHUTDOWN_GRACE", "20s"),
    ]
}

async fn migrated_actors(control: &str) -> Vec<String> {
    connect(control)
        .await
        .query("SELECT DISTINCT actor FROM control_plane.tenant_events WHERE event_type = 'migrated' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_wave_then_restart_finishes_every_tenant_exactly_once() {
    let (migrations, secrets) = (slow_migrations(), SecretsDir::new());
    let control = fresh_control_database().await;
    let mut first = Daemon::start(&control, "first", &env(&migrations, &secrets)).await;
    let tenants = first.register_tenants(&secrets, "k9", 10, 0).await;
    let id = first
        .start_wave(json!({"max_concurrency": 3, "batch_size": 10}))
        .await;
    let mid_wave = wait_until(Duration::from_secs(30), || async {
        let w = first.get_wave(&id).await;
        w["counts"]["succeeded"].as_i64() >= Some(2) && w["counts"]["running"].as_i64() >= Some(1)
    })
    .await;
    assert!(mid_wave, "the wave never got going");

    first.kill9();
    let at_kill: Vec<Vec<i32>> =
        futures_util::future::join_all(tenants.iter().map(|t| history(&t.url))).await;
    let second = Daemon::start(&control, "second", &env(&migrations, &secrets)).await;
    let wave = second
        .wait_for_wave_state(&id, &["completed", "halted"])
        .await;

    assert!(
        at_kill.iter().any(|h| h.len() < 3),
        "the kill happened before the wave finished"
    );
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["counts"]["succeeded"], 10);
    for t in &tenants {
        assert_eq!(history(&t.url).await, vec![1, 2, 3], "{}", t.slug);
        assert_eq!(
            side_effects(&t.url).await,
            vec![1, 2, 3],
            "{} ran a migration twice",
            t.slug
        );
    }
    let versions: Vec<Option<i32>> = connect(&control)
        .await
        .query("SELECT schema_version FROM control_plane.tenants", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(versions.iter().all(|v| *v == Some(3)), "{versions:?}");
    let report = crate::helpers::drover_cmd()
        .arg("check")
        .env("DROVER_DATABASE_URL", &control)
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "registry consistent after the crash: {}",
        String::from_utf8_lossy(&report.stdout)
    );
}

/// Per tenant of wave `id`: its target's state, read by `c` (inside its transaction).
async fn target_states(c: &tokio_postgres::Client, id: &str) -> Vec<(String, String)> {
    c.query(
        "SELECT slug, state FROM control_plane.wave_targets WHERE wave_id = $1 ORDER BY slug",
        &[&id.parse::<uuid::Uuid>().unwrap()],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("slug"), r.get("state")))
    .collect()
}

// The replica dies holding both kinds of unfinished work at once: tenants it claimed and
// is still migrating, and tenants whose migration committed but whose outcome it had not
// yet recorded (the test holds every target row, so the recording transaction waits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_holding_claimed_tenants_and_unrecorded_outcomes_still_migrates_every_tenant_exactly_once(
) {
    let (migrations, secrets) = (slow_migrations(), SecretsDir::new());
    let control = fresh_control_database().await;
    let mut doomed = Daemon::start(&control, "doomed", &env(&migrations, &secrets)).await;
    let tenants = doomed.register_tenants(&secrets, "kb", 12, 0).await;
    let id = doomed
        .start_wave(json!({"max_concurrency": 4, "batch_size": 12}))
        .await;
    let going = wait_until(Duration::from_secs(30), || async {
        let w = doomed.get_wave(&id).await;
        w["counts"]["succeeded"].as_i64() >= Some(1) && w["counts"]["running"].as_i64() >= Some(3)
    })
    .await;
    assert!(going, "the wave never got going");

    let ctl = connect(&control).await;
    // Hold every target row until the replica has both kinds of work at once: an outcome
    // waiting to be recorded and at least two tenants claimed. Which moment the lock lands
    // on is up to the scheduler, so a lock taken too late is let go and taken again.
    let mut both = false;
    for _ in 0..10 {
        let _ = wait_until(Duration::from_secs(30), || async {
            doomed.get_wave(&id).await["counts"]["running"].as_i64() >= Some(3)
        })
        .await;
        ctl.batch_execute("BEGIN").await.unwrap();
        ctl.query(
            "SELECT 1 FROM control_plane.wave_targets WHERE wave_id = $1 FOR UPDATE",
            &[&id.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
        let claimed = target_states(&ctl, &id)
            .await
            .iter()
            .filter(|(_, s)| s == "running")
            .count();
        // A tenant done on its own database but still `running` in the control DB: an
        // outcome waiting to be recorded.
        let unrecorded = || async {
            let mut n = 0;
            for ((slug, state), t) in target_states(&ctl, &id).await.iter().zip(&tenants) {
                assert_eq!(slug, &t.slug);
                if state == "running" && history(&t.url).await == vec![1, 2, 3] {
                    n += 1;
                }
            }
            n
        };
        if claimed >= 2
            && wait_until(Duration::from_secs(30), || async {
                unrecorded().await >= 1
            })
            .await
        {
            both = true;
            break;
        }
        ctl.batch_execute("ROLLBACK").await.unwrap();
    }
    assert!(
        both,
        "no moment with an unrecorded outcome and two claimed tenants"
    );
    doomed.kill9();
    let at_kill = target_states(&ctl, &id).await;
    ctl.batch_execute("ROLLBACK").await.unwrap();
    let taker = Daemon::start(&control, "taker", &env(&migrations, &secrets)).await;
    let wave = taker
        .wait_for_wave_state(&id, &["completed", "halted"])
        .await;

    assert!(
        at_kill.iter().filter(|(_, s)| s == "running").count() >= 2,
        "claimed tenants at the kill: {at_kill:?}"
    );
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["counts"]["succeeded"], 12);
    for t in &tenants {
        assert_eq!(history(&t.url).await, vec![1, 2, 3], "{}", t.slug);
        assert_eq!(
            side_effects(&t.url).await,
            vec![1, 2, 3],
            "{} ran a migration twice",
            t.slug
        );
    }
    let per_tenant: Vec<i64> = connect(&control)
        .await
        .query(
            "SELECT count(e.*) AS n FROM control_plane.tenants t LEFT JOIN control_plane.tenant_events e \
             ON e.tenant_id = t.id AND e.event_type = 'migrated' GROUP BY t.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("n"))
        .collect();
    assert_eq!(per_tenant, vec![1; 12], "one migrated event per tenant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_wave_and_migrate_every_tenant_exactly_once() {
    let (migrations, secrets) = (slow_migrations(), SecretsDir::new());
    let control = fresh_control_database().await;
    let mut e = env(&migrations, &secrets);
    e.push(("DROVER_WORKER_SLOTS", "2"));
    let a = Daemon::start(&control, "replica-a", &e).await;
    let b = Daemon::start(&control, "replica-b", &e).await;
    let tenants = a.register_tenants(&secrets, "two", 12, 0).await;

    let id = a
        .start_wave(json!({"max_concurrency": 4, "batch_size": 12}))
        .await;
    let wave = b.wait_for_wave_state(&id, &["completed", "halted"]).await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    for t in &tenants {
        assert_eq!(side_effects(&t.url).await, vec![1, 2, 3], "{}", t.slug);
    }
    assert_eq!(
        migrated_actors(&control).await,
        vec!["drover:replica-a", "drover:replica-b"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_wave_finishes_in_flight_tenants_and_another_replica_completes_the_wave() {
    let (migrations, secrets) = (slow_migrations(), SecretsDir::new());
    let control = fresh_control_database().await;
    let a = Daemon::start(&control, "leaving", &env(&migrations, &secrets)).await;
    let tenants = a.register_tenants(&secrets, "st", 8, 0).await;
    let id = a
        .start_wave(json!({"max_concurrency": 2, "batch_size": 8}))
        .await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            a.get_wave(&id).await["counts"]["running"].as_i64() >= Some(1)
        })
        .await
    );

    let (clean, logs) = a.terminate().await;
    let leases: i64 = connect(&control)
        .await
        .query_one(
            "SELECT count(*) FROM control_plane.wave_targets WHERE lease_owner IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let b = Daemon::start(&control, "staying", &env(&migrations, &secrets)).await;
    let wave: Value = b.wait_for_wave_state(&id, &["completed", "halted"]).await;

    assert!(clean, "exit after SIGTERM was not clean: {logs}");
    assert_eq!(leases, 0, "leases left behind after a graceful stop");
    assert_eq!(wave["state"], "completed", "{wave:#}");
    for t in &tenants {
        assert_eq!(side_effects(&t.url).await, vec![1, 2, 3], "{}", t.slug);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_stops_at_once_and_the_open_tenant_transaction_rolls_back() {
    let files = counted_migrations(20.0);
    let migrations = MigrationsDir::owned(&files);
    let secrets = SecretsDir::new();
    let control = fresh_control_database().await;
    let d = Daemon::start(&control, "impatient", &env(&migrations, &secrets)).await;
    let tenants = d.register_tenants(&secrets, "sg", 1, 0).await;
    let id = d.start_wave(json!({"max_concurrency": 1})).await;
    // V2 sleeps 20 s inside its transaction: wait until it is running.
    let db = connect(&tenants[0].url).await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            db.query_one("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20%' AND state = 'active' AND pid <> pg_backend_pid()", &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
                > 0
        })
        .await
    );
    let _ = d.get_wave(&id).await;

    let pid = d.child.id().to_string();
    let addr = d.base().trim_start_matches("http://").to_string();
    crate::helpers::sigterm(&pid);
    // The first signal has been handled once the daemon stops accepting connections (it
    // keeps running: its tenant is still in flight).
    assert!(
        wait_until(Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(&addr).await.is_err()
        })
        .await,
        "the first SIGTERM never started the shutdown"
    );
    let started = std::time::Instant::now();
    let (_, logs) = d.terminate().await;

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the second signal did not stop it at once"
    );
    assert!(logs.contains("again: stopping now"), "{logs}");
    let rolled_back = wait_until(Duration::from_secs(10), || async {
        db.query_one("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20%' AND state = 'active' AND pid <> pg_backend_pid()", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 0
    })
    .await;
    assert!(
        rolled_back,
        "the server still runs the dead daemon's migration"
    );
    assert_eq!(
        history(&tenants[0].url).await,
        vec![1],
        "V2 was rolled back, not half-applied"
    );
}

// The replica dies holding tenants claimed ahead in its buffer (leased, not started) and
// finished tenants whose outcomes wait in its completion batch (a batch age of an hour
// keeps them waiting). Both kinds are recovered by lease expiry on the other replica:
// the buffered ones run there, the finished ones are found at the target and recorded,
// each tenant migrated once, with one `migrated` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_holding_a_full_buffer_and_a_pending_completion_batch_migrates_every_tenant_exactly_once(
) {
    let (migrations, secrets) = (slow_migrations(), SecretsDir::new());
    let control = fresh_control_database().await;
    let mut e = env(&migrations, &secrets);
    e.extend([
        ("DROVER_WORKER_SLOTS", "8"),
        ("DROVER_RECORD_BATCH_AGE", "1h"),
    ]);
    let mut doomed = Daemon::start(&control, "doomed", &e).await;
    let tenants = doomed.register_tenants(&secrets, "kf", 24, 0).await;
    let id = doomed
        .start_wave(json!({"max_concurrency": 24, "batch_size": 24}))
        .await;
    // Eight slots claim two ahead.
    let holding = wait_until(Duration::from_secs(60), || async {
        doomed.metric("drover_worker_buffered_tenants").await >= 2.0
            && doomed.metric("drover_worker_unrecorded_outcomes").await >= 1.0
    })
    .await;
    assert!(holding, "never a full buffer and a pending batch at once");
    doomed.kill9();
    let ctl = connect(&control).await;
    let at_kill = target_states(&ctl, &id).await;
    let taker = Daemon::start(&control, "taker", &env(&migrations, &secrets)).await;
    let wave = taker
        .wait_for_wave_state(&id, &["completed", "halted"])
        .await;

    let pending = at_kill.iter().filter(|(_, s)| s == "pending").count();
    assert!(pending >= 1, "the kill came after every claim: {at_kill:?}");
    assert!(
        at_kill.iter().all(|(_, s)| s != "succeeded"),
        "an outcome was recorded despite the hour-long batch age: {at_kill:?}"
    );
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["counts"]["succeeded"], 24);
    for t in &tenants {
        assert_eq!(history(&t.url).await, vec![1, 2, 3], "{}", t.slug);
        assert_eq!(
            side_effects(&t.url).await,
            vec![1, 2, 3],
            "{} ran a migration twice",
            t.slug
        );
    }
    let per_tenant: Vec<i64> = ctl
        .query(
            "SELECT count(e.*) AS n FROM control_plane.tenants t LEFT JOIN control_plane.tenant_events e \
             ON e.tenant_id = t.id AND e.event_type = 'migrated' GROUP BY t.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("n"))
        .collect();
    assert_eq!(per_tenant, vec![1; 24], "one migrated event per tenant");
}
