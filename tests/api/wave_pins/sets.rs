//! Migration sets: which one is `latest` when CI pushes an older set's files again, and
//! rows the control DB itself keeps from changing once written.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    counted_migrations, set_body, wave_app, MigrationsDir, SecretsDir, TestApp, WAVE_DONE,
};

fn files(n: usize) -> Vec<(String, String)> {
    counted_migrations(0.0).into_iter().take(n).collect()
}

fn refs(files: &[(String, String)]) -> Vec<(&str, &str)> {
    files
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect()
}

// Pins: a re-push refreshing the older set's age, or `latest` read from the newest label
// rather than the newest set (tried by hand: the older set becomes latest): a revert commit in CI (pushing the files of release 1 again
// with its own label) would then roll `latest` back and the next wave would stop short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushing_an_older_sets_files_again_under_a_new_label_leaves_the_newer_set_latest() {
    let (empty, secrets) = (MigrationsDir::new(&[]), SecretsDir::new());
    let app = wave_app(&empty, &secrets, &[]).await;
    app.register_tenants(&secrets, "lt", 1, 0).await;
    let (two, three) = (files(2), files(3));
    let older = app.pushed_set(&refs(&two), Some("release-1")).await;
    let newer = app.pushed_set(&refs(&three), Some("release-2")).await;

    let again = app
        .push_set(&set_body(&refs(&two), Some("revert-of-2")))
        .await;
    let again_status = again.status();
    let again: Value = again.json().await.unwrap();
    let latest: Value = app.get_set("latest").await.json().await.unwrap();
    let listed = app.list_sets().await;
    let id = app.start_wave(json!({"soak_seconds": 0})).await;
    let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;

    assert_eq!(again_status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], older.as_str());
    assert_eq!(latest["id"], newer.as_str(), "{latest:#}");
    assert_eq!(listed[0]["id"], newer.as_str());
    assert_eq!(wave["plan"]["migration_set"], newer.as_str());
    assert_eq!(wave["target_version"], 3);
    let by_label: Value = app.get_set("revert-of-2").await.json().await.unwrap();
    assert_eq!(by_label["id"], older.as_str());
}

/// Runs `sql` on the control DB as its owner: the error's SQLSTATE and message, if any.
async fn try_sql(app: &TestApp, sql: &str) -> Option<(String, String)> {
    let err = app.control_db().await.batch_execute(sql).await.err()?;
    let db = err.as_db_error().expect("a server error");
    Some((db.code().code().to_string(), db.message().to_string()))
}

// Pins: the triggers that keep pushed sets immutable (dropped, or covering only some of
// the tables; tried by hand without the files' trigger): a set's id promises its files, and a wave running it
// fetches them by id on every replica.
#[tokio::test]
async fn the_control_db_refuses_to_change_a_pushed_sets_rows() {
    let app = crate::helpers::spawn_app().await;
    let id = app.pushed_set(&refs(&files(2)), Some("release-1")).await;
    let before: Value = app.get_set(&id).await.json().await.unwrap();

    let refused = [
        try_sql(
            &app,
            "UPDATE control_plane.migration_sets SET latest_version = 9",
        )
        .await,
        try_sql(
            &app,
            "UPDATE control_plane.migration_set_files SET sql = 'DROP TABLE x'",
        )
        .await,
        try_sql(
            &app,
            "UPDATE control_plane.migration_set_labels SET created_by = 'someone'",
        )
        .await,
    ];
    let after: Value = app.get_set(&id).await.json().await.unwrap();

    for (table, r) in [
        "migration_sets",
        "migration_set_files",
        "migration_set_labels",
    ]
    .iter()
    .zip(&refused)
    {
        let (code, message) = r.clone().unwrap_or_else(|| panic!("{table} was updated"));
        assert_eq!(code, "P0001", "{table}: {message}");
        assert!(message.contains("immutable"), "{table}: {message}");
    }
    assert_eq!(after, before);
}
