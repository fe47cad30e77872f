//! The expected schema from a replay on a scratch database: a tenant drover migrated is
//! never drifted against the replay of the same set, and a hand change still shows.

use serde_json::{json, Value};

use super::fleet::scan;
use crate::helpers::{connect, db_url, wave_app, MigrationsDir, SecretsDir, WAVE_DONE};

/// A history that exercises what the catalog reads back in its own words: enums grown in
/// later files, replaced functions, triggers, partial and concurrent indexes, dropped and
/// renamed columns, serial and identity columns, views, checks and foreign keys.
const HISTORY: &[(&str, &str)] = &[
    (
        "V1__base.sql",
        "CREATE TYPE plan_kind AS ENUM ('free', 'pro');
         CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE, kind plan_kind NOT NULL DEFAULT 'free',
             scratch int);
         CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             customer_id int NOT NULL REFERENCES customers (id), total numeric(12, 2) CHECK (total >= 0),
             placed_at timestamptz NOT NULL DEFAULT now());",
    ),
    (
        "V2__functions.sql",
        "CREATE FUNCTION order_total(o orders) RETURNS numeric LANGUAGE sql STABLE AS $$ SELECT o.total $$;
         CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.placed_at := now(); RETURN NEW; END $$;
         CREATE TRIGGER orders_stamp BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION stamp();
         CREATE INDEX ON orders (customer_id);
         CREATE INDEX orders_big_idx ON orders (total) WHERE total > 1000;",
    ),
    (
        "V3__grow.sql",
        "ALTER TYPE plan_kind ADD VALUE 'enterprise';
         ALTER TABLE customers DROP COLUMN scratch;
         ALTER TABLE customers RENAME COLUMN email TO contact_email;
         CREATE OR REPLACE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.placed_at := clock_timestamp(); RETURN NEW; END $$;
         CREATE VIEW big_orders AS SELECT id, customer_id, total FROM orders WHERE total > 1000;",
    ),
    (
        "V4__concurrent_index.sql",
        "-- drover:no-transaction\nCREATE INDEX CONCURRENTLY orders_placed_idx ON orders (placed_at);\nCREATE INDEX CONCURRENTLY ON orders (customer_id);",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_migrated_by_drover_is_never_drifted_against_the_replay_of_the_same_set() {
    let (migrations, secrets) = (MigrationsDir::new(HISTORY), SecretsDir::new());
    let scratch = db_url("postgres");
    let app = wave_app(
        &migrations,
        &secrets,
        &[("DROVER_DRIFT_SCRATCH_URL", scratch.as_str())],
    )
    .await;
    let tenants = app.register_tenants(&secrets, "rp", 3, 0).await;
    // Two steps: the tenants' history is not one run of every file.
    let acknowledge = json!([
        "renaming-column",
        "ban-drop-column",
        "require-concurrent-index-creation"
    ]);
    for body in [
        json!({"target_version": 2, "soak_seconds": 0, "acknowledge": acknowledge}),
        json!({"soak_seconds": 0, "acknowledge": acknowledge}),
    ] {
        let id = app.start_wave(body).await;
        let wave = app.wait_for_wave_state(&id, WAVE_DONE).await;
        assert_eq!(wave["state"], "completed", "{wave:#}");
    }
    // One tenant drifts by hand, so the majority would not hide a replay disagreeing
    // with all of them.
    connect(&tenants[0].url)
        .await
        .batch_execute("ALTER TABLE orders ADD COLUMN legacy_id int")
        .await
        .unwrap();
    scan(&app).await;

    let report: Value = app.get_json("/v1/drift").await;
    assert_eq!(report["reference"], "replay", "{report:#}");
    for t in &tenants[1..] {
        let mine: Value = app.get_json(&format!("/v1/tenants/{}/drift", t.slug)).await;
        assert_eq!(mine["drifted"], false, "{mine:#}");
        assert_eq!(mine["fingerprint"], mine["expected_fingerprint"]);
    }
    let drifted: Value = app
        .get_json(&format!("/v1/tenants/{}/drift", tenants[0].slug))
        .await;
    assert_eq!(
        drifted["differences"],
        json!([{"object": "column public.orders.legacy_id", "kind": "extra", "detail": "integer"}]),
        "{drifted:#}"
    );
    // The scratch database is gone.
    let left = connect(&scratch)
        .await
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'drover_replay_%'",
            &[],
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "scratch databases left behind");
    app.stop().await;
}
