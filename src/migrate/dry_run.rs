//! Dry-running one tenant: every pending migration inside one transaction that is always
//! rolled back, so data-dependent failures (a `NOT NULL` or `UNIQUE` only some tenants'
//! rows violate) show up before the real wave.
//!
//! ```text
//!  connect (own connection, resolved credentials, the wave's timeouts)
//!   └► pg_try_advisory_lock(TENANT_LOCK_KEY), as a real run: never beside a real run
//!       ├► read refinery_schema_history, check it against the files (drift → error)
//!       ├► pg_total_relation_size of the relations the pending files name (pg_query)
//!       ├► BEGIN; the transaction's id and how the session reads text (Guard)
//!       │    for each pending file ≤ target, in order:
//!       │      no-transaction file, a session that would read its text otherwise than
//!       │      drover (standard_conforming_strings off, a non-UTF-8 client encoding), or a
//!       │      statement that ends or starts a transaction (PostgreSQL's parser, `split`)
//!       │                                 → stop: it and every later file are listed,
//!       │                                   never executed
//!       │      SAVEPOINT; execute the file's SQL; the same transaction id still? (the
//!       │      savepoint released, or rolled back to after an error)
//!       │                                 → no: needs-attention error naming the file
//!       │                                   (the wave halts); yes, but it failed: error
//!       │                                   (which file, SQLSTATE, message, detail)
//!       ├► ROLLBACK (always; on error too)
//!       └► pg_advisory_unlock, close
//! ```
//!
//! Nothing is written: no history row, no `refinery_schema_history` table, no schema or
//! data change. One thing PostgreSQL never rolls back is a sequence advanced by
//! `nextval` (an `INSERT` into a serial column): those values stay consumed; and what a
//! file does through another connection (`dblink`, `COPY … PROGRAM`) is not this
//! transaction's to roll back.

use std::time::Duration;

use tokio_postgres::{Client, GenericClient, SimpleQueryMessage, Transaction};

use super::connect::connect_with;
use super::error::MigrateError;
use super::set::{MigrationFile, MigrationSet};
use super::split::{transaction_control, TransactionControl};
use super::tenant::{check_history, read_history, simple_bool, take_lock};
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
    let result = run_files(&tx, &pending, &mut out).await;
    out.migrate_time = started.elapsed();
    // Rolled back on every path; after an escape this ends whatever the file left open.
    let rolled_back = tx.rollback().await;
    result?;
    rolled_back.map_err(|e| MigrateError::from_pg(out.checked.last().copied().unwrap_or(0), &e))?;
    Ok(out)
}

/// Executes `pending` in the open transaction `tx`, in order, until one may not run or
/// fails; checks the session before each file (see [`Guard`]).
async fn run_files(
    tx: &Transaction<'_>,
    pending: &[&MigrationFile],
    out: &mut DryRunOutcome,
) -> Result<(), MigrateError> {
    let (guard, mut session) = Guard::open(tx)
        .await
        .map_err(|e| MigrateError::from_pg(pending[0].version, &e))?;
    for (i, file) in pending.iter().enumerate() {
        if let Some(reason) = stop_reason(file, &session) {
            out.not_run = pending[i..].iter().map(|f| f.file_name()).collect();
            out.not_run_reason = Some(reason);
            return Ok(());
        }
        session = guard.run(tx, file).await?;
        out.checked.push(file.version);
    }
    Ok(())
}

/// Why `file` must not run in the dry run's transaction, if it must not.
fn stop_reason(file: &MigrationFile, session: &Session) -> Option<String> {
    const NEVER: &str = "a dry run never executes it, nor the files after it";
    let name = file.file_name();
    if file.no_transaction {
        return Some(format!(
            "{name} is a -- drover:no-transaction file: {NEVER}"
        ));
    }
    if let Session::Misreads(setting) = session {
        return Some(format!(
            "{name} was not run: {setting} in this session (the tenant's settings or an earlier file), \
             so PostgreSQL would not read its text as drover does: {NEVER}"
        ));
    }
    match transaction_control(&file.sql)? {
        TransactionControl::Statement(stmt) => {
            let shown: String = stmt.chars().take(60).collect();
            Some(format!(
                "{name} ends or starts a transaction itself ({shown}): {NEVER}"
            ))
        }
        TransactionControl::Unreadable(why) => Some(format!(
            "{name} cannot be read by PostgreSQL's scanner ({why}): {NEVER}"
        )),
    }
}

/// The dry run's second line of defence, should a file end its transaction despite the
/// check of its text: the transaction's id, assigned when it opened (ids are never
/// reused), compared after every file. Each file also runs inside a savepoint, so that
/// after a failing file the comparison can still be made (an aborted transaction answers
/// nothing), and a savepoint that is gone says the transaction is too.
pub struct Guard {
    xid: String,
}

/// What the session is like between two files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// Still the dry run's transaction, reading text as drover does.
    Same,
    /// Still the dry run's transaction, but this setting makes the server read SQL text
    /// otherwise than drover's parser (`standard_conforming_strings is off`).
    Misreads(String),
    /// The transaction the dry run opened has ended.
    Escaped,
}

/// The savepoint each file runs in.
const SAVEPOINT: &str = "drover_dry_run_file";

impl Guard {
    /// Gives the open transaction its id and remembers it, with how the session reads text.
    pub async fn open(tx: &impl GenericClient) -> Result<(Guard, Session), tokio_postgres::Error> {
        let (xid, session) = observe(tx, "txid_current()").await?;
        Ok((Guard { xid }, session))
    }

    /// What the session is like now, compared with when the guard opened.
    pub async fn check(&self, tx: &impl GenericClient) -> Result<Session, tokio_postgres::Error> {
        let (xid, session) = observe(tx, "txid_current_if_assigned()").await?;
        // An id that could not be read is never taken for the same one.
        Ok(if !xid.is_empty() && xid == self.xid {
            session
        } else {
            Session::Escaped
        })
    }

    /// Executes `file` inside a savepoint and checks the session after it (one round trip
    /// before it, one after). An escape is a loud error naming the file.
    async fn run(
        &self,
        tx: &Transaction<'_>,
        file: &MigrationFile,
    ) -> Result<Session, MigrateError> {
        let pg = |e: &tokio_postgres::Error| MigrateError::from_pg(file.version, e);
        tx.batch_execute(&format!("SAVEPOINT {SAVEPOINT}"))
            .await
            .map_err(|e| pg(&e))?;
        let ran = tx.batch_execute(&file.sql).await;
        let after = match &ran {
            // Checked before the release: after an escape the release fails, the check not.
            Ok(()) => {
                let (checked, released) = futures_util::future::join(
                    self.check(tx),
                    tx.batch_execute(&format!("RELEASE SAVEPOINT {SAVEPOINT}")),
                )
                .await;
                let checked = checked.map_err(|e| pg(&e))?;
                if checked != Session::Escaped {
                    released.map_err(|e| pg(&e))?;
                }
                checked
            }
            // Back to the savepoint: only then does the transaction answer again.
            Err(_) => {
                let (back, checked) = futures_util::future::join(
                    tx.batch_execute(&format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}")),
                    self.check(tx),
                )
                .await;
                match (back, checked) {
                    (Ok(()), Ok(s)) => s,
                    (Ok(()), Err(e)) => return Err(pg(&e)),
                    (Err(_), _) => Session::Escaped,
                }
            }
        };
        if after == Session::Escaped {
            tracing::error!(file = %file.file_name(), "a dry-run file ended the dry run's transaction itself");
            return Err(MigrateError::NeedsAttention {
                version: file.version,
                why: format!(
                    "{} ended the dry run's transaction itself: what it ran after that may be \
                     committed on this tenant; look at the tenant before any wave, and fix the file",
                    file.file_name()
                ),
                server: None,
            });
        }
        ran.map_err(|e| pg(&e))?;
        Ok(after)
    }
}

/// The transaction id `xid_sql` reads (empty when none) and how the session reads text.
async fn observe(
    tx: &impl GenericClient,
    xid_sql: &str,
) -> Result<(String, Session), tokio_postgres::Error> {
    let sql = format!(
        "SELECT coalesce({xid_sql}::text, '') AS xid, \
         current_setting('standard_conforming_strings') AS strings, \
         current_setting('client_encoding') AS encoding"
    );
    let rows = tx.simple_query(&sql).await?;
    let row = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    let get = |col: &str| {
        row.and_then(|r| r.try_get(col).ok().flatten())
            .unwrap_or_default()
            .to_string()
    };
    let (strings, encoding) = (get("strings"), get("encoding"));
    let session = if strings != "on" {
        Session::Misreads(format!("standard_conforming_strings is {strings}"))
    } else if encoding != "UTF8" {
        Session::Misreads(format!("client_encoding is {encoding}"))
    } else {
        Session::Same
    };
    Ok((get("xid"), session))
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
}
