//! Bounded history (README "History retention"): the leader prunes every kind of row past
//! its retention, drops whole event months, and the feed and the webhook outbox keep
//! working on the partitioned event tables. Old rows are made by writing their timestamps
//! in the past directly; the pruner runs every second.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, tenant_body, wait_until, TestApp};

/// A daemon pruning every second with retentions of hours.
async fn pruning_app() -> TestApp {
    TestApp::builder()
        .envs(&[
            ("DROVER_PRUNE_INTERVAL", "1s"),
            ("DROVER_EVENT_RETENTION", "1h"),
            ("DROVER_WEBHOOK_DELIVERED_RETENTION", "1h"),
            ("DROVER_WEBHOOK_DEAD_RETENTION", "3h"),
            ("DROVER_EVALUATION_RETENTION", "1h"),
            ("DROVER_CONSOLE_SESSION_RETENTION", "1h"),
            ("DROVER_SCHEDULE_FIRE_RETENTION", "1h"),
        ])
        .spawn()
        .await
}

/// `SELECT count(*)` of `from_where` (a table and its condition).
async fn count(db: &tokio_postgres::Client, from_where: &str) -> i64 {
    db.query_one(&format!("SELECT count(*) AS n FROM {from_where}"), &[])
        .await
        .unwrap()
        .get("n")
}

/// Whether `control_plane.<name>` exists.
async fn table_exists(db: &tokio_postgres::Client, name: &str) -> bool {
    db.query_one(
        "SELECT to_regclass('control_plane.' || $1) IS NOT NULL AS e",
        &[&name],
    )
    .await
    .unwrap()
    .get("e")
}

/// The name of the month partition `months` from now (negative: past), as V20 names it.
async fn month_partition(db: &tokio_postgres::Client, table: &str, months: i32) -> String {
    let row = db
        .query_one(
            "SELECT $1 || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') \
               + make_interval(months => $2), '\"_y\"YYYY\"m\"MM') AS name",
            &[&table, &months],
        )
        .await
        .unwrap();
    row.get("name")
}

#[tokio::test]
async fn rows_past_their_retention_are_pruned_for_every_kind_and_recent_rows_are_kept() {
    let app = pruning_app().await;
    assert_eq!(
        app.create_tenant(&tenant_body("keepme")).await.status(),
        201
    );
    assert_eq!(
        app.create_schedule(&json!({"name": "yearly", "cron": "0 0 1 1 *"}))
            .await
            .status(),
        201
    );
    let db = app.control_db().await;
    db.batch_execute(
        "INSERT INTO control_plane.tenant_events (tenant_id, event_type, actor, payload, created_at) \
           SELECT id, 'updated', 'test', '{\"old\": \"edge\"}', now() - interval '2 hours' \
           FROM control_plane.tenants WHERE slug = 'keepme'; \
         INSERT INTO control_plane.tenant_events (tenant_id, event_type, actor, payload, created_at) \
           SELECT id, 'updated', 'test', '{\"old\": \"default\"}', now() - interval '3 years' \
           FROM control_plane.tenants WHERE slug = 'keepme'; \
         INSERT INTO control_plane.waves (state, target_version, phase_count, plan, batch_size, \
             max_concurrency, max_per_host, soak_seconds, lock_timeout_ms, statement_timeout_ms, \
             max_attempts, created_by) \
           VALUES ('completed', 1, 1, '[]', 1, 1, 1, 0, 1000, 1000, 1, 'test'); \
         INSERT INTO control_plane.wave_events (wave_id, event_type, actor, created_at) \
           SELECT id, 'created', 'test', now() - interval '2 hours' FROM control_plane.waves \
           UNION ALL SELECT id, 'completed', 'test', now() FROM control_plane.waves; \
         INSERT INTO control_plane.wave_checks (wave_id, name, kind, spec, interval_seconds, \
             failure_limit, inconclusive_limit) \
           SELECT id, 'errors', 'sql', '{}', 1, 0, 0 FROM control_plane.waves; \
         INSERT INTO control_plane.wave_check_evaluations (wave_id, check_name, verdict, value, evaluated_by, evaluated_at) \
           SELECT id, 'errors', 'pass', 'old', 'test', now() - interval '2 hours' FROM control_plane.waves \
           UNION ALL SELECT id, 'errors', 'pass', 'new', 'test', now() FROM control_plane.waves; \
         INSERT INTO control_plane.webhooks (name, url, events, secret_ref, created_by) \
           VALUES ('quiet', 'https://receiver.example/hook', '{schedule.deleted}', 'env:UNUSED', 'test'); \
         INSERT INTO control_plane.webhook_deliveries (webhook_id, event_id, event_type, state, finished_at, next_attempt_at, created_at) \
           SELECT w.id, v.event_id, 'schedule.deleted', v.state, now() - v.ago, now() + interval '1 day', now() - interval '10 hours' \
           FROM control_plane.webhooks w, (VALUES \
               (1, 'delivered', interval '2 hours'), (2, 'delivered', interval '10 minutes'), \
               (3, 'dead', interval '2 hours'), (4, 'dead', interval '4 hours'), \
               (5, 'pending', NULL)) AS v (event_id, state, ago); \
         INSERT INTO control_plane.console_sessions (id_hash, identity, token_check, role, csrf, expires_at) VALUES \
           (sha256('gone'), 'root', sha256('c1'), 'admin', 'x', now() - interval '2 hours'), \
           (sha256('just-expired'), 'root', sha256('c2'), 'admin', 'x', now() - interval '10 minutes'), \
           (sha256('live'), 'root', sha256('c3'), 'admin', 'x', now() + interval '1 hour'); \
         INSERT INTO control_plane.schedule_fires (schedule_name, tick, outcome, handled_by, handled_at) VALUES \
           ('yearly', now() - interval '5 hours', 'skipped_missed', 'test', now() - interval '5 hours'), \
           ('yearly', now() - interval '4 hours', 'skipped_missed', 'test', now() - interval '4 hours');",
    )
    .await
    .unwrap();

    let pruned = wait_until(Duration::from_secs(30), || async {
        count(&db, "control_plane.tenant_events WHERE payload ? 'old'").await == 0
            && count(
                &db,
                "control_plane.wave_events WHERE event_type = 'created'",
            )
            .await
                == 0
            && count(
                &db,
                "control_plane.wave_check_evaluations WHERE value = 'old'",
            )
            .await
                == 0
            && count(
                &db,
                "control_plane.webhook_deliveries WHERE event_id IN (1, 4)",
            )
            .await
                == 0
            && count(
                &db,
                "control_plane.console_sessions WHERE id_hash = sha256('gone')",
            )
            .await
                == 0
            && count(
                &db,
                "control_plane.schedule_fires WHERE handled_at < now() - interval '270 minutes'",
            )
            .await
                == 0
    })
    .await;

    assert!(pruned, "every kind of row past its retention is removed");
    assert!(
        count(
            &db,
            "control_plane.tenant_events WHERE event_type = 'created'"
        )
        .await
            >= 1,
        "the tenant's recent creation event stays"
    );
    assert_eq!(
        count(
            &db,
            "control_plane.wave_events WHERE event_type = 'completed'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db,
            "control_plane.wave_check_evaluations WHERE value = 'new'"
        )
        .await,
        1
    );
    let deliveries: Vec<i64> = db
        .query(
            "SELECT event_id FROM control_plane.webhook_deliveries ORDER BY event_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("event_id"))
        .collect();
    assert_eq!(
        deliveries,
        vec![2, 3, 5],
        "a recent delivered, a dead one inside its longer retention and a pending one stay"
    );
    assert_eq!(count(&db, "control_plane.console_sessions").await, 2);
    assert_eq!(
        count(&db, "control_plane.schedule_fires").await,
        1,
        "a schedule's newest fire stays even past retention"
    );
}

#[tokio::test]
async fn a_month_whose_events_are_all_past_retention_is_dropped_whole_and_its_rows_counted() {
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_PRUNE_INTERVAL", "1s"),
            ("DROVER_EVENT_RETENTION", "40d"),
        ])
        .spawn()
        .await;
    let db = app.control_db().await;
    let old = month_partition(&db, "control_events", -4).await;
    let edge = month_partition(&db, "control_events", -1).await;
    let ahead = month_partition(&db, "control_events", 3).await;
    // Made before the first round can run: the daemon prunes a second after it starts.
    db.batch_execute(
        "SELECT control_plane.event_partition_create('control_events', \
             (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '4 months')::date); \
         SELECT control_plane.event_partition_create('control_events', \
             (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date); \
         INSERT INTO control_plane.control_events (event_type, actor, created_at) \
           SELECT 'schedule.updated', 'test', \
             (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '4 months') AT TIME ZONE 'UTC' \
               + n * interval '1 minute' \
           FROM generate_series(1, 1500) AS n;",
    )
    .await
    .unwrap();
    assert!(table_exists(&db, &old).await);

    let dropped = wait_until(Duration::from_secs(30), || async {
        !table_exists(&db, &old).await
    })
    .await;

    assert!(dropped, "{old} is dropped");
    assert!(
        table_exists(&db, &edge).await,
        "last month still holds events inside retention: it stays"
    );
    assert!(
        table_exists(&db, &ahead).await,
        "the pruner keeps three months ahead"
    );
    let counted = wait_until(Duration::from_secs(10), || async {
        app.metric("drover_pruned_rows_total{table=\"control_events\"}")
            .await
            == 1500.0
    })
    .await;
    assert!(
        counted,
        "{}",
        app.metrics_text()
            .await
            .lines()
            .filter(|l| l.starts_with("drover_pruned_rows_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn the_feed_pages_newest_first_without_a_gap_across_month_partitions() {
    let app = spawn_app().await;
    let db = app.control_db().await;
    // Five events in each of three partitions: this month's, one made two months back,
    // and the default one (older than every month), among what the daemon writes itself.
    db.batch_execute(
        "SELECT control_plane.event_partition_create('control_events', \
             (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '2 months')::date); \
         INSERT INTO control_plane.control_events (event_type, actor, created_at) \
           SELECT 'schedule.updated', 'pager', t.at - n * interval '1 second' \
           FROM (VALUES (now()), \
                   ((date_trunc('month', now() AT TIME ZONE 'UTC') - interval '2 months' \
                     + interval '10 days') AT TIME ZONE 'UTC'), \
                   (now() - interval '3 years')) AS t (at), \
                generate_series(1, 5) AS n;",
    )
    .await
    .unwrap();
    let partitions = count(
        &db,
        "(SELECT DISTINCT tableoid FROM control_plane.control_events WHERE actor = 'pager') p",
    )
    .await;
    assert_eq!(partitions, 3, "the events lie in three partitions");

    let mut seen: Vec<(String, i64)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/events?actor=pager&limit=4&cursor={c}"),
            None => "/v1/events?actor=pager&limit=4".to_string(),
        };
        let page: Value = app.get_json(&path).await;
        for e in page["items"].as_array().unwrap() {
            seen.push((
                e["created_at"].as_str().unwrap().to_string(),
                e["id"].as_i64().unwrap(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }

    assert_eq!(seen.len(), 15, "every event once: {seen:?}");
    let times: Vec<chrono::DateTime<chrono::Utc>> =
        seen.iter().map(|(t, _)| t.parse().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );
}

#[tokio::test]
async fn an_event_in_any_partition_queues_a_delivery_for_a_matching_webhook() {
    let app = spawn_app().await;
    let db = app.control_db().await;
    db.batch_execute(
        "INSERT INTO control_plane.webhooks (name, url, events, secret_ref, created_by) \
           VALUES ('all-schedules', 'https://receiver.example/hook', '{schedule.*}', 'env:UNUSED', 'test'); \
         SELECT control_plane.event_partition_create('control_events', \
             (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '6 months')::date); \
         INSERT INTO control_plane.control_events (event_type, actor, created_at) VALUES \
           ('schedule.created', 'outbox', now()), \
           ('schedule.updated', 'outbox', now() + interval '6 months'), \
           ('schedule.deleted', 'outbox', now() - interval '5 years');",
    )
    .await
    .unwrap();

    let queued: Vec<String> = db
        .query(
            "SELECT d.event_type FROM control_plane.webhook_deliveries d \
             JOIN control_plane.control_events e ON e.id = d.event_id \
             WHERE e.actor = 'outbox' ORDER BY d.event_type",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("event_type"))
        .collect();

    assert_eq!(
        queued,
        vec!["schedule.created", "schedule.deleted", "schedule.updated"],
        "this month's partition, one attached later and the default partition all fire the outbox"
    );
}

#[test]
fn a_retention_under_a_second_or_unreadable_is_refused_at_start_naming_its_variable() {
    for (var, value) in [
        ("DROVER_EVENT_RETENTION", "500ms"),
        ("DROVER_WEBHOOK_DEAD_RETENTION", "0"),
        ("DROVER_PRUNE_INTERVAL", "ten minutes"),
    ] {
        let env = |k: &str| match k {
            "DROVER_DATABASE_URL" => Some("postgres://localhost/drover".to_string()),
            "DROVER_ADMIN_TOKEN" => Some("0123456789abcdef0123".to_string()),
            k if k == var => Some(value.to_string()),
            _ => None,
        };
        let err = drover::config::Config::load_with(None, &env)
            .expect_err("a bad retention is a configuration error")
            .to_string();
        assert!(err.contains(var), "{var}={value}: {err}");
    }
}
