//! Control-plane migrations and the schema's own constraints.

use crate::helpers::{connect, drover_cmd, fresh_database, spawn_app};

#[tokio::test]
async fn three_concurrent_migrate_control_runs_all_succeed_and_apply_each_migration_once() {
    let url = fresh_database("control").await;

    let children: Vec<_> = (0..3)
        .map(|_| {
            drover_cmd()
                .arg("migrate-control")
                .env("DROVER_DATABASE_URL", &url)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();

    for out in &outputs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let applied = outputs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stdout).contains("applied control migrations"))
        .count();
    assert_eq!(
        applied, 1,
        "exactly one run applies, the others find nothing to do"
    );
    let db = connect(&url).await;
    let rows = db
        .query(
            "SELECT version, count(*) FROM control_plane.refinery_schema_history GROUP BY 1",
            &[],
        )
        .await
        .unwrap();
    // One row per file (versions may have gaps: files are numbered when written).
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/control-migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".sql"))
        })
        .count();
    assert_eq!(rows.len(), files);
    assert!(rows
        .iter()
        .any(|r| r.get::<_, i32>(0) == drover::db::control_head_version()));
    assert!(rows.iter().all(|r| r.get::<_, i64>(1) == 1));
}

#[tokio::test]
async fn database_constraints_refuse_rows_that_skip_rust_validation() {
    let app = spawn_app().await;
    let db = app.control_db().await;
    let insert = |slug: &str, secret_ref: &str, status: &str| {
        format!(
            "INSERT INTO control_plane.tenants (slug, display_name, db_name, db_host, db_user, db_secret_ref, status) \
             VALUES ('{slug}', 'x', 't_{n}', 'db1', 'u', '{secret_ref}', '{status}')",
            n = slug.len()
        )
    };

    let mut refused = Vec::new();
    for reserved in drover::registry::RESERVED_SLUGS {
        refused.push(
            db.batch_execute(&insert(reserved, "file:x", "active"))
                .await
                .is_err(),
        );
    }
    refused.push(
        db.batch_execute(&insert("Acme", "file:x", "active"))
            .await
            .is_err(),
    );
    refused.push(
        db.batch_execute(&insert("acme", "postgres://a:b@h/d", "active"))
            .await
            .is_err(),
    );
    refused.push(
        db.batch_execute(&insert("acme", "file:../x", "active"))
            .await
            .is_err(),
    );
    refused.push(
        db.batch_execute(&insert("acme", "file:x", "sleeping"))
            .await
            .is_err(),
    );
    let accepted = db.batch_execute(&insert("acme", "file:x", "active")).await;

    assert!(refused.iter().all(|r| *r), "{refused:?}");
    assert!(accepted.is_ok(), "{accepted:?}");
    let status: String = db
        .query_one(
            "SELECT status FROM control_plane.tenants WHERE slug = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "active");
}

#[tokio::test]
async fn the_control_schema_checks_a_references_shape_and_leaves_the_scheme_list_to_the_code() {
    let app = spawn_app().await;
    let db = app.control_db().await;
    let insert = |slug: &str, secret_ref: &str| {
        format!(
            "INSERT INTO control_plane.tenants (slug, display_name, db_name, db_host, db_user, db_secret_ref, status) \
             VALUES ('{slug}', 'x', 't_{slug}', 'db1', 'u', '{secret_ref}', 'active')"
        )
    };

    let mut refused = Vec::new();
    for (slug, bad) in [("a", "no-scheme"), ("b", "Env:X"), ("c", "aws-sm:a@b")] {
        refused.push(db.batch_execute(&insert(slug, bad)).await.is_err());
    }
    let mut accepted = Vec::new();
    for scheme in drover::secrets::SCHEMES {
        let slug = format!("s-{}", scheme.name);
        let r = db
            .batch_execute(&insert(&slug, &format!("{}:x", scheme.name)))
            .await;
        accepted.push((scheme.name, r.is_ok()));
    }
    // A scheme added to the code needs no control migration.
    let unlisted = db.batch_execute(&insert("later", "aws-sm:tenants/x")).await;

    assert!(refused.iter().all(|r| *r), "{refused:?}");
    assert!(accepted.iter().all(|(_, ok)| *ok), "{accepted:?}");
    assert!(unlisted.is_ok(), "{unlisted:?}");
}

#[tokio::test]
async fn updated_at_is_maintained_by_the_trigger() {
    let app = spawn_app().await;
    app.create_tenant(&crate::helpers::tenant_body("acme"))
        .await;
    let db = app.control_db().await;
    db.batch_execute(
        "ALTER TABLE control_plane.tenants DISABLE TRIGGER tenants_touch_updated_at; \
         UPDATE control_plane.tenants SET updated_at = now() - interval '1 day'; \
         ALTER TABLE control_plane.tenants ENABLE TRIGGER tenants_touch_updated_at;",
    )
    .await
    .unwrap();

    db.batch_execute("UPDATE control_plane.tenants SET display_name = 'changed'")
        .await
        .unwrap();

    let fresh: bool = db
        .query_one(
            "SELECT updated_at > now() - interval '1 minute' FROM control_plane.tenants",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(fresh);
}

#[tokio::test]
async fn every_column_of_the_waves_table_but_the_plan_is_read_into_the_wave_struct() {
    let app = spawn_app().await;
    let db = app.control_db().await;

    let rows = db
        .query(
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = 'control_plane' AND table_name = 'waves' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap();

    let read: Vec<&str> = drover::waves::row::COLUMNS
        .split(',')
        .map(str::trim)
        .collect();
    let unread: Vec<String> = rows
        .iter()
        .map(|r| r.get::<_, String>("name"))
        .filter(|c| !read.contains(&c.as_str()))
        .collect();
    // `plan` is read beside the struct (the claim only needs parts of it); `updated_at`
    // is the trigger's.
    assert_eq!(unread, ["plan", "updated_at"]);
}
