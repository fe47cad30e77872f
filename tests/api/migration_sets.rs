//! Migration sets published to the control DB (docs/design.md#migration-sets): push, validation
//! and limits, waves that run a set by id, label or `latest` whatever the replica's disk holds,
//! deletion while in use, the publisher role and the fleet's notion of latest.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    connect, counted_migrations, fresh_control_database, history, set_body, side_effects,
    spawn_app, wave_app, Daemon, MigrationsDir, SecretsDir, TestApp, WAVE_DONE,
};

fn counted(sleep_secs: f64) -> Vec<(String, String)> {
    counted_migrations(sleep_secs)
}

fn refs(files: &[(String, String)]) -> Vec<(&str, &str)> {
    files
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect()
}

async fn set_rows(app: &TestApp) -> (i64, i64) {
    let db = app.control_db().await;
    let sets: i64 = db
        .query_one("SELECT count(*) FROM control_plane.migration_sets", &[])
        .await
        .unwrap()
        .get(0);
    let files: i64 = db
        .query_one(
            "SELECT count(*) FROM control_plane.migration_set_files",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (sets, files)
}

#[tokio::test]
async fn pushing_the_same_files_twice_returns_one_set_201_then_200_with_the_new_label_added() {
    let app = spawn_app().await;
    let files = counted(0.0);

    let first = app.push_set(&set_body(&refs(&files), Some("abc123"))).await;
    let first_status = first.status();
    let first: Value = first.json().await.unwrap();
    let second = app.push_set(&set_body(&refs(&files), Some("def456"))).await;
    let second_status = second.status();
    let second: Value = second.json().await.unwrap();

    assert_eq!(first_status, StatusCode::CREATED, "{first}");
    assert_eq!(second_status, StatusCode::OK, "{second}");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["id"].as_str().unwrap().len(), 64);
    assert_eq!(second["labels"], json!(["abc123", "def456"]));
    assert_eq!(second["versions"], json!([1, 2, 3]));
    assert_eq!(second["files"][0]["name"], "V1__side_effects.sql");
    assert!(second["lint"]["findings"].is_array(), "{second}");
    assert_eq!(set_rows(&app).await, (1, 3));
    let by_label: Value = app.get_set("def456").await.json().await.unwrap();
    assert_eq!(by_label["id"], first["id"]);
    assert_eq!(app.list_sets().await.len(), 1);
}

#[tokio::test]
async fn a_bad_file_name_a_duplicate_version_or_an_oversized_file_is_refused_with_nothing_stored() {
    let app = spawn_app().await;
    let big = "-- x\n".repeat(1024 * 1024);

    let bad_name = app
        .push_set(&set_body(
            &[
                ("V1__ok.sql", "select 1;"),
                ("V2__add-col.sql", "select 2;"),
            ],
            None,
        ))
        .await;
    let (bad_status, bad): (StatusCode, Value) =
        (bad_name.status(), bad_name.json().await.unwrap());
    let duplicate = app
        .push_set(&set_body(
            &[("V1__a.sql", "select 1;"), ("V01__b.sql", "select 1;")],
            None,
        ))
        .await;
    let duplicate_status = duplicate.status();
    let too_big = app
        .push_set(&set_body(&[("V1__seed.sql", &big)], None))
        .await;
    let (big_status, big_body): (StatusCode, Value) =
        (too_big.status(), too_big.json().await.unwrap());
    let taken_first = app
        .pushed_set(&[("V1__a.sql", "select 1;")], Some("v1"))
        .await;
    let taken = app
        .push_set(&set_body(&[("V1__a.sql", "select 2;")], Some("v1")))
        .await;
    let (taken_status, taken): (StatusCode, Value) = (taken.status(), taken.json().await.unwrap());

    assert_eq!(bad_status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["error"]["code"], "invalid_migrations");
    assert_eq!(bad["error"]["file"], "V2__add-col.sql");
    assert!(bad["error"]["message"]
        .as_str()
        .unwrap()
        .contains("V2__add-col.sql"));
    assert_eq!(duplicate_status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(big_status, StatusCode::UNPROCESSABLE_ENTITY, "{big_body}");
    assert_eq!(big_body["error"]["code"], "file_too_large");
    assert_eq!(big_body["error"]["file"], "V1__seed.sql");
    assert_eq!(taken_status, StatusCode::CONFLICT, "{taken}");
    assert_eq!(taken["error"]["code"], "label_taken");
    assert_eq!(taken["error"]["set_id"], taken_first.as_str());
    assert_eq!(
        set_rows(&app).await,
        (1, 1),
        "only the first v1 push stored"
    );
}

#[tokio::test]
async fn a_set_larger_than_max_body_bytes_is_accepted_up_to_max_set_bytes_then_413() {
    let app = TestApp::builder()
        .envs(&[
            ("DROVER_MAX_BODY_BYTES", "4096"),
            ("DROVER_MAX_SET_BYTES", "65536"),
        ])
        .spawn()
        .await;
    let medium = format!("-- {}\nselect 1;", "x".repeat(20_000));
    let large = format!("-- {}\nselect 1;", "x".repeat(100_000));

    let ok = app
        .push_set(&set_body(&[("V1__medium.sql", &medium)], None))
        .await;
    let refused = app
        .push_set(&set_body(&[("V1__large.sql", &large)], None))
        .await;
    let other_route = app
        .create_tenant(&json!({ "slug": "x", "note": medium }))
        .await;

    assert_eq!(ok.status(), StatusCode::CREATED);
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        other_route.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "other routes keep max_body_bytes"
    );
    assert_eq!(set_rows(&app).await.0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_pinned_by_label_stops_at_its_sets_last_version_and_latest_takes_the_newest() {
    let empty = MigrationsDir::new(&[]);
    let secrets = SecretsDir::new();
    let app = wave_app(&empty, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "pin", 3, 0).await;
    let files = counted(0.0);
    let old = app.pushed_set(&refs(&files[..2]), Some("release-1")).await;
    let new = app.pushed_set(&refs(&files), Some("release-2")).await;

    let pinned = app
        .start_wave(json!({"migration_set": "release-1", "soak_seconds": 0}))
        .await;
    let pinned = app.wait_for_wave_state(&pinned, WAVE_DONE).await;
    let at_pinned = history(&tenants[0].url).await;
    let latest = app
        .start_wave(json!({"migration_set": "latest", "soak_seconds": 0}))
        .await;
    let latest = app.wait_for_wave_state(&latest, WAVE_DONE).await;

    assert_eq!(pinned["state"], "completed", "{pinned:#}");
    assert_eq!(pinned["target_version"], 2);
    assert_eq!(pinned["plan"]["migration_set"], old.as_str());
    assert_eq!(pinned["plan"]["migration_source"], "pushed");
    assert_eq!(at_pinned, vec![1, 2]);
    assert_eq!(latest["state"], "completed", "{latest:#}");
    assert_eq!(latest["plan"]["migration_set"], new.as_str());
    for t in &tenants {
        assert_eq!(side_effects(&t.url).await, vec![1, 2, 3], "{}", t.slug);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_set_is_422_and_without_pushed_sets_the_directory_is_latest() {
    let migrations = crate::helpers::counted_migrations_dir();
    let secrets = SecretsDir::new();
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "dir", 1, 0).await;

    let unknown = app
        .create_wave(&json!({"migration_set": "no-such-release"}))
        .await;
    let (status, body): (StatusCode, Value) = (unknown.status(), unknown.json().await.unwrap());
    let id = app.start_wave(json!({"soak_seconds": 0})).await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "migration_set");
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["plan"]["migration_source"], "directory");
    assert_eq!(wave["plan"]["migration_set"].as_str().unwrap().len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_set_an_unfinished_wave_or_a_schedule_uses_is_409_naming_them() {
    let empty = MigrationsDir::new(&[]);
    let secrets = SecretsDir::new();
    let app = wave_app(&empty, &secrets, &[]).await;
    app.register_tenants(&secrets, "del", 2, 1).await;
    let id = app
        .pushed_set(&refs(&counted(0.0)), Some("release-1"))
        .await;
    let wave = app.start_wave(json!({"soak_seconds": 3600})).await;
    let schedule = app
        .create_schedule(&json!({"name": "nightly", "cron": "0 0 3 * * *", "template": {"migration_set": "release-1"}})).await;
    assert_eq!(schedule.status(), StatusCode::CREATED);

    let in_use = app.delete_set(&id).await;
    let (in_use_status, in_use): (StatusCode, Value) =
        (in_use.status(), in_use.json().await.unwrap());
    app.abort_wave(&wave).await;
    app.delete("/v1/schedules/nightly").await;
    let freed = app.delete_set(&id).await;
    let gone = app.get_set(&id).await;

    assert_eq!(in_use_status, StatusCode::CONFLICT, "{in_use}");
    assert_eq!(in_use["error"]["code"], "set_in_use");
    assert_eq!(in_use["error"]["used_by"]["waves"], json!([wave]));
    assert_eq!(in_use["error"]["used_by"]["schedules"], json!(["nightly"]));
    assert_eq!(freed.status(), StatusCode::NO_CONTENT);
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_publisher_token_pushes_and_reads_sets_but_cannot_start_waves_or_read_tenants() {
    let app = spawn_app().await;
    let ci = app.issue_token("ci", "publisher").await;

    let pushed = app
        .with_token(&ci)
        .push_set(&set_body(&[("V1__a.sql", "select 1;")], Some("sha1")))
        .await;
    let read = app.with_token(&ci).get("/v1/migration-sets/sha1").await;
    let wave = app.with_token(&ci).create_wave(&json!({})).await;
    let tenants = app.with_token(&ci).get("/v1/tenants").await;
    let delete = app.with_token(&ci).delete("/v1/migration-sets/sha1").await;
    let viewer = app.issue_token("dash", "viewer").await;
    let viewer_push = app
        .with_token(&viewer)
        .push_set(&set_body(&[("V1__a.sql", "select 1;")], None))
        .await;
    let viewer_read = app.with_token(&viewer).get("/v1/migration-sets").await;

    assert_eq!(pushed.status(), StatusCode::CREATED);
    let pushed: Value = pushed.json().await.unwrap();
    assert_eq!(pushed["created_by"], "token:ci");
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(wave.status(), StatusCode::FORBIDDEN);
    assert_eq!(tenants.status(), StatusCode::FORBIDDEN);
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    assert_eq!(viewer_push.status(), StatusCode::FORBIDDEN);
    let body: Value = viewer_push.json().await.unwrap();
    assert_eq!(body["error"]["required_role"], "publisher");
    assert_eq!(viewer_read.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_behind_latest_follows_the_newest_pushed_set() {
    let migrations = crate::helpers::counted_migrations_dir();
    let secrets = SecretsDir::new();
    let app = wave_app(&migrations, &secrets, &[]).await;
    app.register_tenants(&secrets, "fl", 2, 0).await;
    let files = counted(0.0);
    app.pushed_set(&refs(&files[..1]), Some("one")).await;
    let id = app.start_wave(json!({"soak_seconds": 0})).await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
    assert_eq!(wave["state"], "completed", "{wave:#}");

    let before: Value = app.get_json("/v1/fleet").await;
    app.pushed_set(&refs(&files[..2]), Some("two")).await;
    let after: Value = app.get_json("/v1/fleet").await;
    // The gauge is a snapshot refreshed in the background: wait for the refresh after the push.
    crate::helpers::wait_until(std::time::Duration::from_secs(15), || async {
        app.metric("drover_tenants_behind").await == 2.0
    })
    .await;
    let behind_metric = app.metric("drover_tenants_behind").await;

    assert_eq!(
        before["latest_version"], 1,
        "the pushed set, not the directory's V3"
    );
    assert_eq!(before["behind"], 0);
    assert_eq!(after["latest_version"], 2);
    assert_eq!(after["behind"], 2);
    assert_eq!(behind_metric, 2.0);
}

fn replica_env<'a>(dir: &'a str, secrets: &'a SecretsDir) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DROVER_MIGRATIONS_DIR", dir),
        ("DROVER_SECRETS_DIR", secrets.path()),
        ("DROVER_WAVE_LEASE", "2s"),
        ("DROVER_RETRY_BACKOFF", "100ms"),
        ("DROVER_WORKER_SLOTS", "2"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_no_files_and_with_different_files_run_a_pushed_set_without_stalling() {
    let secrets = SecretsDir::new();
    let control = fresh_control_database().await;
    // One replica's disk has another V2; the other has no migrations directory at all.
    let mut other = counted(0.0);
    other[1].1 = "CREATE TABLE not_this (id int);".into();
    let different = MigrationsDir::new(&refs(&other));
    let missing = std::env::temp_dir().join(format!("drover-no-migrations-{}", std::process::id()));
    let a = Daemon::start(
        &control,
        "differs",
        &replica_env(different.path(), &secrets),
    )
    .await;
    let b = Daemon::start(
        &control,
        "empty",
        &replica_env(missing.to_str().unwrap(), &secrets),
    )
    .await;
    let tenants = a.register_tenants(&secrets, "rs", 10, 0).await;
    let set = b
        .push_set(&set_body(&refs(&counted(0.3)), Some("app-sha")))
        .await;
    assert_eq!(set.status(), StatusCode::CREATED);

    let id = a
        .start_wave(json!({"max_concurrency": 4, "batch_size": 10, "soak_seconds": 0}))
        .await;
    let wave = b.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(wave["state"], "completed", "{wave:#}");
    for t in &tenants {
        assert_eq!(history(&t.url).await, vec![1, 2, 3], "{}", t.slug);
        assert_eq!(side_effects(&t.url).await, vec![1, 2, 3], "{}", t.slug);
    }
    let actors: Vec<String> = connect(&control)
        .await
        .query("SELECT DISTINCT actor FROM control_plane.tenant_events WHERE event_type = 'migrated' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actors,
        vec!["drover:differs", "drover:empty"],
        "both replicas worked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drover_migrations_push_prints_the_id_and_list_set_shows_the_pushed_files() {
    let app = spawn_app().await;
    let ci = app.issue_token("ci", "publisher").await;
    let dir = MigrationsDir::new(&refs(&counted(0.0)));
    let cli = |args: &[&str]| {
        crate::helpers::drover_cmd()
            .args(args)
            .env("DROVER_SERVER", app.base())
            .env("DROVER_TOKEN", &ci)
            .output()
            .unwrap()
    };

    let pushed = tokio::task::block_in_place(|| {
        cli(&["migrations", "push", dir.path(), "--label", "sha-1"])
    });
    let listed = tokio::task::block_in_place(|| cli(&["migrations", "list", "--set", "sha-1"]));
    dir.put("V4__bad-name.sql", "select 4;");
    let refused = tokio::task::block_in_place(|| cli(&["migrations", "push", dir.path()]));

    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let id = String::from_utf8_lossy(&pushed.stdout).trim().to_string();
    let sets = app.list_sets().await;
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0]["id"], id.as_str());
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(table.contains("V3__widget_colour.sql"), "{table}");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("V4__bad-name.sql"));
}

/// The documented encoding of a set's id, hashed by coreutils' `sha256sum`: for each file
/// in version order, its name and its SQL as netstrings (`<bytes>:<text>,`).
fn sha256sum_of_set(files: &[(&str, &str)]) -> String {
    use std::io::Write;
    let mut encoded = Vec::new();
    for (name, sql) in files {
        for part in [name.as_bytes(), sql.as_bytes()] {
            encoded.extend_from_slice(format!("{}:", part.len()).as_bytes());
            encoded.extend_from_slice(part);
            encoded.push(b',');
        }
    }
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&encoded).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[tokio::test]
async fn a_sets_id_is_the_sha256_of_its_names_and_whole_files_and_one_changed_byte_changes_it() {
    let app = spawn_app().await;
    let files = [
        ("V1__accounts.sql", "CREATE TABLE accounts (id int);\n"),
        (
            "V2__note.sql",
            "-- why: support asked\nALTER TABLE accounts ADD note text;\n",
        ),
    ];
    // One byte of a comment: the SQL PostgreSQL runs is the same, the file is not.
    let edited = [
        files[0],
        (
            "V2__note.sql",
            "-- why: Support asked\nALTER TABLE accounts ADD note text;\n",
        ),
    ];

    let first: Value = app
        .push_set(&set_body(&files, None))
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .push_set(&set_body(&edited, None))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(first["id"], sha256sum_of_set(&files).as_str(), "{first}");
    assert_eq!(second["id"], sha256sum_of_set(&edited).as_str(), "{second}");
    assert_ne!(first["id"], second["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_published_under_the_older_checksum_id_keeps_it_runs_and_is_found_by_a_push_of_its_files(
) {
    let files = [("V1__t.sql", "CREATE TABLE t (id int);")];
    let migrations = MigrationsDir::new(&files);
    let secrets = SecretsDir::new();
    let app = wave_app(&migrations, &secrets, &[]).await;
    let tenants = app.register_tenants(&secrets, "legacy", 1, 0).await;
    // Stored as a release before this one would have: the id from names and refinery checksums.
    let set = drover::migrate::MigrationSet::from_files(
        files.iter().map(|(n, s)| (n.to_string(), s.to_string())),
    )
    .unwrap();
    let (old, file) = (set.legacy_id(), &set.files()[0]);
    let db = app.control_db().await;
    db.execute(
        "INSERT INTO control_plane.migration_sets (id, latest_version, file_count, total_bytes, created_by) \
         VALUES ($1, 1, 1, $2, 'ci')",
        &[&old, &(file.sql.len() as i64)],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO control_plane.migration_set_files (set_id, version, name, checksum, sql, no_transaction) \
         VALUES ($1, 1, $2, $3, $4, false)",
        &[&old, &file.name, &file.checksum.to_string(), &file.sql],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO control_plane.migration_set_labels (label, set_id, created_by) VALUES ('r1', $1, 'ci')",
        &[&old],
    )
    .await
    .unwrap();

    let pushed = app.push_set(&set_body(&files, Some("r1"))).await;
    let status = pushed.status();
    let pushed: Value = pushed.json().await.unwrap();
    let id = app
        .start_wave(json!({"migration_set": old, "soak_seconds": 0}))
        .await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(status, StatusCode::OK, "{pushed}");
    assert_eq!(pushed["id"], old.as_str(), "{pushed}");
    assert_ne!(old, set.id());
    assert_eq!(set_rows(&app).await, (1, 1));
    assert_eq!(wave["state"], "completed", "{wave:#}");
    assert_eq!(wave["plan"]["migration_set"], old.as_str(), "{wave:#}");
    assert_eq!(history(&tenants[0].url).await, [1]);
}
