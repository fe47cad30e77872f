//! The two windows between a tenant's database and the control DB, forced rather than
//! left to chance: the tenant committed and its replica died before recording it; and a
//! replica that lost its lease (its control-DB connection hung while the tenant finished)
//! records long after another replica took the tenant over and moved it further.
//!
//! The tenant is stopped inside its migration deterministically: V2 waits for an advisory
//! lock the test holds in the tenant database, so the test decides when it may commit.

use std::time::Duration;

use serde_json::{json, Value};

use super::support::{
    migrated_events, replica, schema_version, stall_between_transactions, targets, StallRelay,
};
use crate::helpers::{
    connect, fresh_control_database, history, side_effects, wait_until, ApiClient, Daemon,
    MigrationsDir, SecretsDir, TenantDb, WAVE_DONE,
};

/// The advisory key V2 waits for (held by the test).
const HOLD: i64 = 7_357_001;

/// V1 and V3 run at once; V2 waits inside its transaction until the test lets go of
/// [`HOLD`]. Each file leaves a row in `side_effects`, so a file run twice shows.
fn held_migrations() -> MigrationsDir {
    MigrationsDir::new(&[
        (
            "V1__side_effects.sql",
            "CREATE TABLE side_effects (version int NOT NULL);\nINSERT INTO side_effects VALUES (1);",
        ),
        (
            "V2__held.sql",
            "INSERT INTO side_effects VALUES (2);\nSELECT pg_advisory_xact_lock(7357001);",
        ),
        ("V3__after.sql", "INSERT INTO side_effects VALUES (3);"),
    ])
}

/// Advisory locks in the tenant database: (granted, waiting).
async fn advisory_locks(t: &TenantDb) -> (i64, i64) {
    const SQL: &str = "SELECT count(*) FILTER (WHERE granted) AS granted, \
             count(*) FILTER (WHERE NOT granted) AS waiting FROM pg_locks \
         WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
    let row = connect(&t.url).await.query_one(SQL, &[]).await.unwrap();
    (row.get("granted"), row.get("waiting"))
}

/// Holds [`HOLD`] in the tenant database until the returned client lets go or drops.
async fn hold(t: &TenantDb) -> tokio_postgres::Client {
    let c = connect(&t.url).await;
    c.execute("SELECT pg_advisory_lock($1)", &[&HOLD])
        .await
        .unwrap();
    c
}

/// Waits until the tenant's migration is inside V2, waiting for [`HOLD`].
async fn wait_inside_v2(t: &TenantDb) {
    let inside = wait_until(Duration::from_secs(30), || async {
        advisory_locks(t).await.1 > 0
    })
    .await;
    assert!(inside, "the migration never reached V2");
}

/// Lets V2 go on, and waits until the tenant is at `versions` and its runner has let go
/// of its own lock (the runner is done with the tenant database).
async fn release_and_wait(holder: &tokio_postgres::Client, t: &TenantDb, versions: &[i32]) {
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&HOLD])
        .await
        .unwrap();
    let committed = wait_until(Duration::from_secs(30), || async {
        history(&t.url).await == versions && advisory_locks(t).await == (0, 0)
    })
    .await;
    assert!(committed, "the tenant never committed {versions:?}");
}

fn wave_id(id: &str) -> uuid::Uuid {
    id.parse().unwrap()
}

fn tos(events: &[Value]) -> Vec<Value> {
    events.iter().map(|e| e["payload"]["to"].clone()).collect()
}

// Pins: a replica that takes over a tenant already at the target (its first runner died
// between the tenant's commit and the control DB's) and records nothing on the registry,
// or records it twice. Tried by hand: treating every up-to-date tenant as "only the target
// row changes" leaves `schema_version` NULL and no event, and this fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_after_the_tenant_committed_but_before_recording_it_leaves_one_migrated_event(
) {
    let (migrations, secrets) = (held_migrations(), SecretsDir::new());
    let control = fresh_control_database().await;
    let env = [
        ("DROVER_MIGRATIONS_DIR", migrations.path()),
        ("DROVER_SECRETS_DIR", secrets.path()),
        ("DROVER_WAVE_LEASE", "2s"),
        ("DROVER_RETRY_BACKOFF", "100ms"),
    ];
    let mut doomed = Daemon::start(&control, "doomed", &env).await;
    let tenant = doomed
        .register_tenants(&secrets, "cw", 1, 0)
        .await
        .remove(0);
    let holder = hold(&tenant).await;
    let id = doomed.start_wave(json!({})).await;
    wait_inside_v2(&tenant).await;

    // From here until the kill, nobody can record anything about this target: the test
    // holds its row (the control DB is as good as unreachable for it).
    let ctl = connect(&control).await;
    ctl.batch_execute("BEGIN").await.unwrap();
    ctl.query(
        "SELECT state FROM control_plane.wave_targets WHERE wave_id = $1 FOR UPDATE",
        &[&wave_id(&id)],
    )
    .await
    .unwrap();
    release_and_wait(&holder, &tenant, &[1, 2, 3]).await;
    doomed.kill9();
    let at_kill = ctl
        .query_one(
            "SELECT w.state, t.schema_version FROM control_plane.wave_targets w \
             JOIN control_plane.tenants t ON t.id = w.tenant_id WHERE w.wave_id = $1",
            &[&wave_id(&id)],
        )
        .await
        .unwrap();
    let (state_at_kill, version_at_kill): (String, Option<i32>) =
        (at_kill.get("state"), at_kill.get("schema_version"));
    ctl.batch_execute("ROLLBACK").await.unwrap();
    let taker = replica(Some(&control), "taker", &migrations, &secrets, &[]).await;
    let wave = taker.wait_for_wave_state(&id, WAVE_DONE).await;
    let events = migrated_events(&taker, &tenant.slug).await;

    assert_eq!((state_at_kill.as_str(), version_at_kill), ("running", None));
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(
        targets(&taker, &id).await[&tenant.slug]["state"],
        "succeeded"
    );
    assert_eq!(schema_version(&taker, &tenant.slug).await, 3);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["payload"]["to"], 3);
    assert_eq!(events[0]["actor"], "drover:taker");
    assert_eq!(history(&tenant.url).await, vec![1, 2, 3]);
    assert_eq!(
        side_effects(&tenant.url).await,
        vec![1, 2, 3],
        "a file ran twice"
    );
}

// Pins: a replica that lost its lease writing its (older) outcome when it finally reaches
// the control DB: moving the registry's version back, or adding a second `migrated` event.
// Tried by hand: writing the version whether or not the lease was still ours; the version
// then goes from 3 back to 2 and a third event appears, and this fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_its_lease_and_records_late_never_moves_the_version_back() {
    const APP: &str = "pins-stalled";
    let (migrations, secrets) = (held_migrations(), SecretsDir::new());
    let control = fresh_control_database().await;
    let relay = StallRelay::start().await;
    let through_relay = format!("{}?application_name={APP}", relay.url_for(&control));
    let stalled = replica(
        Some(&through_relay),
        "stalled",
        &migrations,
        &secrets,
        &[("DROVER_POOL_SIZE", "24")],
    )
    .await;
    let tenant = stalled
        .register_tenants(&secrets, "ll", 1, 0)
        .await
        .remove(0);
    let witness = stalled
        .register_tenants(&secrets, "lw", 1, 0)
        .await
        .remove(0);
    let holder = hold(&tenant).await;
    let first = stalled
        .start_wave(json!({"target_version": 2, "selector": {"slugs": [tenant.slug]}}))
        .await;
    wait_inside_v2(&tenant).await;
    // Idle pooled connections, so the stalled replica's loop hangs on one rather than
    // failing to open a new one.
    let many: Vec<&ApiClient> = vec![&stalled; 16];
    futures_util::future::join_all(many.iter().map(|a| a.get_wave(&first))).await;

    stall_between_transactions(&relay, APP).await;
    release_and_wait(&holder, &tenant, &[1, 2]).await;
    let taker = replica(Some(&control), "taker", &migrations, &secrets, &[]).await;
    let first_wave = taker.wait_for_wave_state(&first, WAVE_DONE).await;
    let after_takeover = migrated_events(&taker, &tenant.slug).await;
    let second = taker
        .start_wave(json!({"selector": {"slugs": [tenant.slug]}}))
        .await;
    let second_wave = taker.wait_for_wave_state(&second, WAVE_DONE).await;
    taker.stop().await;
    relay.resume();
    // The stalled replica's loop records what it had queued before it claims again: once
    // it has run a wave of its own, its late outcome for the tenant was recorded.
    let third = stalled
        .start_wave(json!({"selector": {"slugs": [witness.slug]}}))
        .await;
    let third_wave = stalled.wait_for_wave_state(&third, WAVE_DONE).await;
    let events = migrated_events(&stalled, &tenant.slug).await;

    assert_eq!(first_wave["state"], "completed", "{first_wave:#}");
    assert_eq!(
        tos(&after_takeover),
        vec![json!(2)],
        "recorded by the taker"
    );
    assert_eq!(second_wave["state"], "completed", "{second_wave:#}");
    assert_eq!(third_wave["state"], "completed", "{third_wave:#}");
    assert_eq!(
        schema_version(&stalled, &tenant.slug).await,
        3,
        "moved back"
    );
    assert_eq!(tos(&events), vec![json!(2), json!(3)], "{events:#?}");
    assert!(
        events.iter().all(|e| e["actor"] == "drover:taker"),
        "{events:#?}"
    );
    assert_eq!(history(&tenant.url).await, vec![1, 2, 3]);
    assert_eq!(
        side_effects(&tenant.url).await,
        vec![1, 2, 3],
        "a file ran twice"
    );
}
