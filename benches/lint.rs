//! Lint benchmark: 200 migration files of the kinds a fleet ships (new tables, indexes,
//! columns, constraints, backfills, renames), linted as one scope the way `POST /v1/waves`
//! does; prints the wall time of the whole scope (best and median of 5) and per file.
//!
//! Run: `cargo bench --bench lint` (`BENCH_FILES` changes the count). Target: < 1 s for
//! 200 files.

use std::time::{Duration, Instant};

use drover::lint;
use drover::migrate::MigrationFile;

/// A migration typical of file `n`: every sixth kind is one the lint flags.
fn file(n: i32) -> MigrationFile {
    let t = format!("table_{}", n / 6);
    let sql = match n % 6 {
        0 => format!(
            "CREATE TABLE {t} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account_id bigint NOT NULL, \
             name text NOT NULL, payload jsonb, created_at timestamptz NOT NULL DEFAULT now());\n\
             CREATE INDEX {t}_account ON {t} (account_id);\n\
             COMMENT ON TABLE {t} IS 'created by migration {n}';"
        ),
        1 => format!(
            "ALTER TABLE {t} ADD COLUMN archived_at timestamptz;\n\
             UPDATE {t} SET archived_at = now() WHERE payload ->> 'archived' = 'true';"
        ),
        2 => format!(
            "ALTER TABLE accounts ADD COLUMN tier_{n} text NOT NULL DEFAULT 'free';\n\
             CREATE OR REPLACE FUNCTION touch_{n}() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN NEW.created_at := now(); RETURN NEW; END $$;"
        ),
        3 => format!("ALTER TABLE accounts ADD CONSTRAINT fk_{n} FOREIGN KEY (owner_id) REFERENCES users (id) NOT VALID;\n\
             ALTER TABLE accounts VALIDATE CONSTRAINT fk_{n};"),
        4 => format!("CREATE INDEX accounts_{n} ON accounts (email, created_at DESC) WHERE deleted_at IS NULL;"),
        _ => format!(
            "INSERT INTO settings (key, value) SELECT 'k{n}', jsonb_build_object('n', {n}) \
             WHERE NOT EXISTS (SELECT 1 FROM settings WHERE key = 'k{n}');"
        ),
    };
    MigrationFile {
        version: n,
        name: format!("step_{n}"),
        checksum: 0,
        sql,
        no_transaction: false,
    }
}

fn main() {
    let count: i32 = std::env::var("BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let files: Vec<MigrationFile> = (1..=count).map(file).collect();
    let refs: Vec<&MigrationFile> = files.iter().collect();
    let mut times: Vec<Duration> = Vec::new();
    let mut findings = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let report = lint::lint_files(&refs);
        times.push(started.elapsed());
        findings = report.findings.len();
    }
    times.sort();
    let (best, median) = (times[0], times[times.len() / 2]);
    println!("lint: {count} files, {findings} findings");
    println!(
        "  whole scope  best {:>8.1} ms  median {:>8.1} ms   (target < 1000 ms)",
        best.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3
    );
    println!(
        "  per file     median {:>8.3} ms",
        median.as_secs_f64() * 1e3 / f64::from(count)
    );
}
