//! Dry-running one tenant: every pending migration inside one transaction that is always
//! rolled back, so data-dependent failures (a `NOT NULL` or `UNIQUE` only some tenants'
//! rows violate) show up before the real wave.
//!
//! ```text
//!  connect (own connection, resolved credentials, the wave's timeouts)
//!   └► pg_try_advisory_lock(TENANT_LOCK_KEY), as a real run: never beside a real run
//!       ├► read refinery_schema_history, check it against the files (drift → error)
//!       ├► pg_total_relation_size of the relations the pending files name (pg_query)
//!       ├► BEGIN
//!       │    for each pending file ≤ target, in order:
//!       │      no-transaction file, or one that ends transactions itself → stop: it and
//!       │                                   every later file are listed, never executed
//!       │      execute the file's SQL       → error: which file, SQLSTATE, message, detail
//!       ├► ROLLBACK (always; on error too)
//!       └► pg_advisory_unlock, close
//! ```
//!
//! Nothing is written: no history row, no `refinery_schema_history` table, no schema or
//! data change. One thing PostgreSQL never rolls back is a sequence advanced by
//! `nextval` (an `INSERT` into a serial column): those values stay consumed.

use std::time::Duration;

use tokio_postgres::Client;

use super::error::MigrateError;
use super::set::{MigrationFile, MigrationSet};
use super::split::split_statements;
use super::tenant::{check_history, connect_with, read_history, simple_bool, take_lock};
use super::tenant::{RunLimits, TenantConnection, TENANT_LOCK_KEY};

/// What a dry run found on a tenant that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunOutcome {
    /// Highest applied version (None: no history yet).
    pub from: Option<i32>,
    /// Versions executed (and rolled back) without an error.
    pub checked: Vec<i32>,
    /// Files not executed: a no-transaction file and every file after it.
    pub not_run: Vec<String>,
    /// Why `not_run` is not empty.
    pub not_run_reason: Option<String>,
    /// Time spent waiting for the advisory lock.
    pub lock_wait: Duration,
    /// Existing tables (and indexes) the pending statements name, with their
    /// `pg_total_relation_size` before the run, largest first.
    pub tables: Vec<TableSize>,
    /// Time the pending files took to execute (before the rollback).
    pub migrate_time: Duration,
}

/// One relation a pending migration names, and its size before the run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TableSize {
    pub name: String,
    pub bytes: i64,
}

/// Every relation `files` name, as PostgreSQL's parser reads them (`pg_query`); a file
/// it cannot parse names nothing (the run itself reports the syntax error).
pub fn named_tables(files: &[&MigrationFile]) -> Vec<String> {
    let mut names: Vec<String> = files
        .iter()
        .filter_map(|f| pg_query::parse(&f.sql).ok())
        .flat_map(|parsed| parsed.tables())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Sizes of the relations in `names` that exist (tables a migration creates do not yet).
/// Names come from the parser unquoted: each part is quoted back before the lookup.
async fn sizes(client: &Client, names: &[String]) -> Result<Vec<TableSize>, tokio_postgres::Error> {
    const SQL: &str =
        "SELECT DISTINCT ON (r.oid) n AS name, pg_total_relation_size(r.oid) AS bytes \
         FROM unnest($1::text[]) AS n, \
         LATERAL (SELECT to_regclass(CASE WHEN strpos(n, '.') > 0 \
             THEN quote_ident(split_part(n, '.', 1)) || '.' || quote_ident(split_part(n, '.', 2)) \
             ELSE quote_ident(n) END)::oid AS oid) AS r \
         WHERE r.oid IS NOT NULL ORDER BY r.oid";
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = client
        .query(SQL, &[&names])
        .await?
        .iter()
        .map(|r| {
            Ok(TableSize {
                name: r.try_get("name")?,
                bytes: r.try_get("bytes")?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

/// The first statement of `sql` that would end or start a transaction itself (it would
/// commit the dry run's work), if any.
pub fn transaction_control(sql: &str) -> Option<String> {
    split_statements(sql).into_iter().find(|stmt| {
        let mut rest = stmt.trim_start();
        while let Some(after) = rest.strip_prefix("/*") {
            rest = after
                .find("*/")
                .map_or("", |i| &after[i + 2..])
                .trim_start();
        }
        let mut words = rest
            .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
            .filter(|w| !w.is_empty() && !w.starts_with("--"))
            .map(str::to_ascii_uppercase);
        match words.next().as_deref() {
            Some("BEGIN" | "START" | "COMMIT" | "END" | "ABORT") => true,
            // ROLLBACK TO SAVEPOINT stays inside the transaction; ROLLBACK ends it.
            Some("ROLLBACK") => words.next().as_deref() != Some("TO"),
            Some("PREPARE") => words.next().as_deref() == Some("TRANSACTION"),
            _ => false,
        }
    })
}

/// Dry-runs `target` on one tenant (see the module diagram).
pub async fn dry_run(
    conn: &TenantConnection,
    set: &MigrationSet,
    target: i32,
    limits: &RunLimits,
    on_connect: impl FnOnce(tokio_postgres::CancelToken),
) -> Result<DryRunOutcome, MigrateError> {
    let mut client = connect_with(conn, limits, "", "drover-dry-run").await?;
    on_connect(client.cancel_token());
    let lock_wait = take_lock(&client, limits.lock_wait).await?;
    let result = run_locked(&mut client, set, target).await;
    let unlock = format!("SELECT pg_advisory_unlock({TENANT_LOCK_KEY}) AS ok");
    if let Ok(false) = simple_bool(&client, &unlock).await {
        tracing::error!("tenant migration lock was not held at unlock");
    }
    result.map(|mut out| {
        out.lock_wait = lock_wait;
        out
    })
}

async fn run_locked(
    client: &mut Client,
    set: &MigrationSet,
    target: i32,
) -> Result<DryRunOutcome, MigrateError> {
    let history = read_history(client)
        .await
        .map_err(|e| MigrateError::from_pg(0, &e))?;
    let from = check_history(&history, set)?;
    let pending: Vec<&MigrationFile> = set
        .files()
        .iter()
        .filter(|f| Some(f.version) > from && f.version <= target)
        .collect();
    let mut out = DryRunOutcome {
        from,
        checked: Vec::new(),
        not_run: Vec::new(),
        not_run_reason: None,
        lock_wait: Duration::ZERO,
        tables: Vec::new(),
        migrate_time: Duration::ZERO,
    };
    if pending.is_empty() {
        return Ok(out);
    }
    // Measured before the files run: the size the real migration will meet.
    out.tables = sizes(client, &named_tables(&pending))
        .await
        .map_err(|e| MigrateError::from_pg(pending[0].version, &e))?;
    let started = std::time::Instant::now();
    let tx = client
        .transaction()
        .await
        .map_err(|e| MigrateError::from_pg(pending[0].version, &e))?;
    for (i, file) in pending.iter().enumerate() {
        let stop = if file.no_transaction {
            Some(format!(
                "{} is a -- drover:no-transaction file: a dry run never executes it, nor the files after it",
                file.file_name()
            ))
        } else {
            transaction_control(&file.sql).map(|stmt| {
                let shown: String = stmt.chars().take(60).collect();
                format!(
                    "{} ends or starts a transaction itself ({shown}): a dry run never executes it, nor the files after it",
                    file.file_name()
                )
            })
        };
        if let Some(reason) = stop {
            out.not_run = pending[i..].iter().map(|f| f.file_name()).collect();
            out.not_run_reason = Some(reason);
            break;
        }
        if let Err(e) = tx.batch_execute(&file.sql).await {
            let cause = MigrateError::from_pg(file.version, &e);
            let _ = tx.rollback().await;
            return Err(cause);
        }
        out.checked.push(file.version);
    }
    out.migrate_time = started.elapsed();
    tx.rollback()
        .await
        .map_err(|e| MigrateError::from_pg(out.checked.last().copied().unwrap_or(0), &e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relations_a_file_names_are_read_by_the_parser_and_an_unparsable_file_names_none() {
        let dir = std::env::temp_dir().join(format!("drover-named-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("V1__a.sql"),
            "ALTER TABLE accounts ADD COLUMN email text;\n\
             CREATE INDEX accounts_email ON billing.invoices (email);\n\
             UPDATE accounts SET email = '' WHERE id IN (SELECT id FROM users);",
        )
        .unwrap();
        std::fs::write(dir.join("V2__b.sql"), "ALTER TABLE nope ADD COLUMN;").unwrap();
        let set = MigrationSet::load(&dir).unwrap();
        let files: Vec<&MigrationFile> = set.files().iter().collect();

        let names = named_tables(&files);

        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(names, vec!["accounts", "billing.invoices", "users"]);
    }

    #[test]
    fn statements_that_end_the_transaction_are_found_and_others_are_not() {
        assert!(transaction_control("ALTER TABLE t ADD c int;\nCOMMIT;").is_some());
        assert!(transaction_control("begin;\ncreate table t (a int);").is_some());
        assert!(transaction_control("START TRANSACTION; SELECT 1").is_some());
        assert!(transaction_control("ROLLBACK;").is_some());
        assert!(transaction_control("/* done */ COMMIT").is_some());
        assert!(transaction_control("PREPARE TRANSACTION 'x'").is_some());

        assert!(transaction_control("SAVEPOINT a; ROLLBACK TO SAVEPOINT a;").is_none());
        assert!(transaction_control("PREPARE q AS SELECT 1").is_none());
        assert!(transaction_control(
            "DO $$ BEGIN PERFORM 1; END $$;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';"
        )
        .is_none());
        assert!(transaction_control("-- COMMIT later\nALTER TABLE t ADD c int;").is_none());
    }
}
