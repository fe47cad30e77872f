//! Dry-running one tenant: every pending migration inside one transaction that is always
//! rolled back, so data-dependent failures (a `NOT NULL` or `UNIQUE` only some tenants'
//! rows violate) show up before the real wave.
//!
//! ```text
//!  connect (own connection, resolved credentials, the wave's timeouts)
//!   └► pg_try_advisory_lock(TENANT_LOCK_KEY), as a real run: never beside a real run
//!       ├► read refinery_schema_history, check it against the files (drift → error)
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
    let unlock = format!("SELECT pg_advisory_unlock({TENANT_LOCK_KEY})");
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
    };
    if pending.is_empty() {
        return Ok(out);
    }
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
    tx.rollback()
        .await
        .map_err(|e| MigrateError::from_pg(out.checked.last().copied().unwrap_or(0), &e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
