//! Migrating one tenant database, safely against any other runner.
//!
//! ```text
//!  open: connect (own connection, resolved credentials; timeouts in the startup packet)
//!   │     + pg_try_advisory_lock + read the history, pipelined: one round trip (a worker
//!   │     may open ahead, while its slot still runs the tenant before)
//!   ├► already at the target (and no drift) → done (committed history cannot go back)
//!   └► lock not ours: poll pg_try_advisory_lock every 100 ms up to lock_wait (never a
//!       │   + re-read refinery_schema_history, pipelined    blocking waiter: it would
//!       │   (after the lock: another runner may just have run)  deadlock against
//!       │                                                        CREATE INDEX CONCURRENTLY)
//!       ├► check it against the files: edited or missing version → Drift, nothing runs
//!       ├► pending ≤ target (lock timeouts retried on the wave's schedule, `lock_retry`):
//!       │                    transactional run → one round trip: per file BEGIN; the file;
//!       │                    its history row exactly as refinery writes it; COMMIT
//!       │                    (the history table is created in the first transaction when
//!       │                    the read found none)
//!       │                    no-transaction file → statement by statement (split by
//!       │                    PostgreSQL's parser, `split`), then its row
//!       └► re-read the history (it must end at the target) + pg_advisory_unlock (checked),
//!          pipelined; then the caller's `after` hook on the same connection (the wave
//!          takes the schema fingerprint there); close
//! ```
//!
//! The transactional run is what refinery's runner does (one transaction per file, the row
//! in it), without its `CREATE TABLE IF NOT EXISTS` and second history read per tenant: the
//! checksums and names are refinery's, so the stock CLI agrees with every row written here.
//!
//! Recording the outcome in the control DB is the caller's job (`waves`), in one
//! control transaction after this returns.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

pub(crate) use super::connect::connect_with;
pub use super::connect::{RunLimits, TenantConnection};
use super::error::MigrateError;
use super::history::read_history_table;
pub use super::history::{check_history, read_history, History};
use super::lock_retry::{with_lock_retries, LockRetries};
use super::set::MigrationSet;
use super::split::split_statements;

/// Advisory-lock key every drover runner takes in a tenant database ("drover" + 2).
pub const TENANT_LOCK_KEY: i64 = 0x6472_6f76_6572_0002;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// Highest applied version before (None: no history yet).
    pub from: Option<i32>,
    /// Highest applied version after.
    pub to: Option<i32>,
    /// Versions this run applied.
    pub applied: Vec<i32>,
    /// Time spent waiting for the advisory lock.
    pub lock_wait: Duration,
}

async fn connect(conn: &TenantConnection, limits: &RunLimits) -> Result<Client, MigrateError> {
    connect_with(conn, limits, "", "drover-migrate").await
}

pub(crate) async fn take_lock(client: &Client, wait: Duration) -> Result<Duration, MigrateError> {
    let started = Instant::now();
    loop {
        let got = simple_bool(
            client,
            &format!("SELECT pg_try_advisory_lock({TENANT_LOCK_KEY}) AS ok"),
        )
        .await
        .map_err(|e| MigrateError::from_pg(0, &e))?;
        if got {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= wait {
            return Err(MigrateError::LockBusy {
                waited_ms: started.elapsed().as_millis() as u64,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One-round-trip boolean query (simple protocol: no prepare step); `sql` names its one
/// column `ok`.
pub(crate) async fn simple_bool(client: &Client, sql: &str) -> Result<bool, tokio_postgres::Error> {
    let rows = client.simple_query(sql).await?;
    Ok(rows
        .iter()
        .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.try_get("ok").ok().flatten() == Some("t"))))
}

/// Takes the tenant's advisory lock like `take_lock` and reads the history in the same
/// round trip: the read is queued behind the lock request on the connection, so the server
/// runs it after the lock is ours and it sees whatever the previous holder committed.
async fn lock_and_read(
    client: &Client,
    wait: Duration,
) -> Result<(Duration, Option<History>), MigrateError> {
    let started = Instant::now();
    let lock = format!("SELECT pg_try_advisory_lock({TENANT_LOCK_KEY}) AS ok");
    loop {
        let (got, history) =
            futures_util::future::join(simple_bool(client, &lock), read_history_table(client))
                .await;
        if got.map_err(|e| MigrateError::from_pg(0, &e))? {
            let history = history.map_err(|e| MigrateError::from_pg(0, &e))?;
            return Ok((started.elapsed(), history));
        }
        if started.elapsed() >= wait {
            return Err(MigrateError::LockBusy {
                waited_ms: started.elapsed().as_millis() as u64,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Brings one tenant database up to `target` (see the module diagram), with one attempt
/// at `limits.lock_timeout` and no lock retries.
pub async fn run(
    conn: &TenantConnection,
    set: &MigrationSet,
    target: i32,
    limits: &RunLimits,
    on_connect: impl FnOnce(tokio_postgres::CancelToken),
) -> Result<RunOutcome, MigrateError> {
    run_with(
        conn,
        set,
        target,
        limits,
        &LockRetries::NONE,
        &|| {},
        on_connect,
    )
    .await
}

/// A tenant connection opened ahead of its run: connected with the first lock attempt's
/// timeouts, its advisory lock tried and its history read in the same round trip.
pub struct Opened {
    client: Client,
    /// The session advisory lock is ours (closing the connection releases it).
    locked: bool,
    /// The history as read after the lock request (None: no history table yet).
    history: Option<History>,
    connected: Duration,
}

impl Opened {
    /// Cancels the statement running on this connection (a hard stop).
    pub fn cancel_token(&self) -> tokio_postgres::CancelToken {
        self.client.cancel_token()
    }
}

/// Connects to the tenant and, pipelined, tries its lock and reads its history: what a
/// run starts with, done before the run when a worker connects ahead.
pub async fn open(
    conn: &TenantConnection,
    limits: &RunLimits,
    retries: &LockRetries,
) -> Result<Opened, MigrateError> {
    let started = Instant::now();
    // The first attempt's lock_timeout travels in the startup packet, as ever.
    let first = RunLimits {
        lock_timeout: retries.schedule(limits.lock_timeout)[0].0,
        ..*limits
    };
    let client = connect(conn, &first).await?;
    let connected = started.elapsed();
    let lock = format!("SELECT pg_try_advisory_lock({TENANT_LOCK_KEY}) AS ok");
    let (got, history) =
        futures_util::future::join(simple_bool(&client, &lock), read_history_table(&client)).await;
    Ok(Opened {
        locked: got.map_err(|e| MigrateError::from_pg(0, &e))?,
        history: history.map_err(|e| MigrateError::from_pg(0, &e))?,
        client,
        connected,
    })
}

/// [`run`] retrying lock timeouts on the `retries` schedule, the last attempt at
/// `limits.lock_timeout`; a final lock timeout names its blockers (see `lock_retry`).
/// `on_lock_timeout` is called for every lock timeout.
pub async fn run_with(
    conn: &TenantConnection,
    set: &MigrationSet,
    target: i32,
    limits: &RunLimits,
    retries: &LockRetries,
    on_lock_timeout: &(dyn Fn() + Send + Sync),
    on_connect: impl FnOnce(tokio_postgres::CancelToken),
) -> Result<RunOutcome, MigrateError> {
    let opened = open(conn, limits, retries).await?;
    // Lets a hard stop cancel the running statement instead of waiting for the server
    // to notice the closed socket (it only does when it next talks to the client).
    on_connect(opened.cancel_token());
    let run = Run {
        conn,
        set,
        target,
        limits,
        retries,
        after: None,
    };
    run_opened(opened, &run, on_lock_timeout).await
}

/// What one run applies where, and how.
pub struct Run<'a> {
    pub conn: &'a TenantConnection,
    pub set: &'a MigrationSet,
    pub target: i32,
    pub limits: &'a RunLimits,
    pub retries: &'a LockRetries,
    /// Called on the run's connection once it succeeded (the history rows are written),
    /// also when nothing was pending.
    pub after: Option<&'a dyn AfterRun>,
}

/// Work on the tenant's connection after a successful run: the connection is open and
/// the schema is the one the run left, so nothing needs to connect again. Its failures
/// are its own to report; the run has succeeded either way.
pub trait AfterRun: Send + Sync {
    fn after<'c>(
        &'c self,
        client: &'c Client,
        outcome: &'c RunOutcome,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'c>>;
}

/// Runs on a connection [`open`] made (now or ahead of time).
pub async fn run_opened(
    opened: Opened,
    run: &Run<'_>,
    on_lock_timeout: &(dyn Fn() + Send + Sync),
) -> Result<RunOutcome, MigrateError> {
    let Run {
        conn,
        set,
        target,
        limits,
        retries,
        after: hook,
    } = *run;
    let Opened {
        client,
        locked,
        history,
        connected,
    } = opened;
    // Committed history cannot go back: a tenant at the target is done, lock or not
    // (closing the connection releases a lock taken for nothing).
    if let Some(current) = up_to_date(history.as_deref().unwrap_or_default(), set, target)? {
        let outcome = RunOutcome {
            from: current,
            to: current,
            applied: Vec::new(),
            lock_wait: Duration::ZERO,
        };
        if let Some(hook) = hook {
            hook.after(&client, &outcome).await;
        }
        return Ok(outcome);
    }
    let (lock_wait, history) = if locked {
        (Duration::ZERO, history)
    } else {
        lock_and_read(&client, limits.lock_wait).await?
    };
    tracing::debug!(
        connect_ms = connected.as_millis() as u64,
        lock_ms = lock_wait.as_millis() as u64,
        "tenant connected and locked"
    );
    // A retry re-reads the history: files before the one that timed out are committed.
    let mut history = Some(history);
    let client = &client;
    let result = with_lock_retries(client, conn, limits, retries, on_lock_timeout, || {
        let known = history.take();
        async move {
            let history = match known {
                Some(h) => h,
                None => read_history_table(client)
                    .await
                    .map_err(|e| MigrateError::from_pg(0, &e))?,
            };
            run_locked(client, set, target, history).await
        }
    })
    .await;
    let (from, applied) = match result {
        Ok(ran) => ran,
        Err(e) => {
            unlock(client).await;
            return Err(e);
        }
    };
    // The history must end at the target: read with the unlock, in one round trip.
    let unlock_sql = format!("SELECT pg_advisory_unlock({TENANT_LOCK_KEY}) AS ok");
    let (after, unlocked) =
        futures_util::future::join(read_history(client), simple_bool(client, &unlock_sql)).await;
    // A failed unlock means the lock was not ours: worth a loud log, not a failed run.
    if let Ok(false) = unlocked {
        tracing::error!("tenant migration lock was not held at unlock");
    }
    let after = after.map_err(|e| MigrateError::from_pg(0, &e))?;
    let to = check_history(&after, set)?;
    let expected = if applied.is_empty() {
        from
    } else {
        set.files()
            .iter()
            .filter(|f| f.version <= target)
            .map(|f| f.version)
            .max()
    };
    if to != expected {
        // Something other than this run changed the history meanwhile: a person must look.
        return Err(MigrateError::NeedsAttention {
            version: expected.unwrap_or(0),
            why: format!("history ends at {to:?} after the run, expected {expected:?}"),
            server: None,
        });
    }
    let outcome = RunOutcome {
        from,
        to,
        applied,
        lock_wait,
    };
    if let Some(hook) = hook {
        hook.after(client, &outcome).await;
    }
    Ok(outcome)
}

async fn unlock(client: &Client) {
    let unlock = format!("SELECT pg_advisory_unlock({TENANT_LOCK_KEY}) AS ok");
    if let Ok(false) = simple_bool(client, &unlock).await {
        tracing::error!("tenant migration lock was not held at unlock");
    }
}

/// `Some(current version)` when nothing up to `target` is pending in `history`. Read
/// with or without the lock: a runner mid-way holds its rows uncommitted, so the read sees
/// the tenant before it and answers `None`; what it does see is committed and stays.
fn up_to_date(
    history: &[(i32, String, String)],
    set: &MigrationSet,
    target: i32,
) -> Result<Option<Option<i32>>, MigrateError> {
    let current = check_history(history, set)?;
    let pending = set
        .files()
        .iter()
        .any(|f| Some(f.version) > current && f.version <= target);
    Ok((!pending).then_some(current))
}

/// Applies what is pending under the lock; returns (version before, versions applied).
async fn run_locked(
    client: &Client,
    set: &MigrationSet,
    target: i32,
    history: Option<History>,
) -> Result<(Option<i32>, Vec<i32>), MigrateError> {
    let mut has_table = history.is_some();
    let from = check_history(&history.unwrap_or_default(), set)?;
    let pending: Vec<_> = set
        .files()
        .iter()
        .filter(|f| Some(f.version) > from && f.version <= target)
        .collect();
    let mut applied = Vec::new();
    let mut i = 0;
    while i < pending.len() {
        if pending[i].no_transaction {
            run_no_transaction(client, pending[i]).await?;
            applied.push(pending[i].version);
            has_table = true;
            i += 1;
            continue;
        }
        // The longest run of transactional files goes in one round trip.
        let mut end = i;
        while end + 1 < pending.len() && !pending[end + 1].no_transaction {
            end += 1;
        }
        applied.extend(run_transactional(client, &pending[i..=end], has_table).await?);
        has_table = true;
        i = end + 1;
    }
    Ok((from, applied))
}

/// refinery's history table, exactly as refinery creates it.
const HISTORY_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS refinery_schema_history(version int4 PRIMARY KEY, \
     name VARCHAR(255), applied_on VARCHAR(255), checksum VARCHAR(255))";

/// The history row of `file`, as refinery's runner writes it (its version, name and
/// checksum; `applied_on` in RFC 3339, which the stock CLI parses).
fn history_insert(file: &super::set::MigrationFile) -> String {
    let applied_on = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Names are `\w+` (the file-name pattern) and checksums are numbers: nothing to quote.
    format!(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES ({}, '{}', '{applied_on}', '{}')",
        file.version,
        file.name.replace('\'', "''"),
        file.checksum
    )
}

/// Runs transactional files the way refinery's runner does, each in its own transaction
/// with its history row, but as one multi-statement query: one round trip for the run.
/// A failing file rolls back alone; the files before it stay committed, as with refinery.
async fn run_transactional(
    client: &Client,
    files: &[&super::set::MigrationFile],
    has_table: bool,
) -> Result<Vec<i32>, MigrateError> {
    let mut sql = String::new();
    for (n, file) in files.iter().enumerate() {
        sql.push_str("BEGIN;\n");
        if n == 0 && !has_table {
            sql.push_str(HISTORY_TABLE);
            sql.push_str(";\n");
        }
        sql.push_str(&file.sql);
        // A file whose last statement lacks its semicolon must not swallow the INSERT.
        sql.push_str("\n;\n");
        sql.push_str(&history_insert(file));
        sql.push_str(";\nCOMMIT;\n");
    }
    let Err(e) = client.batch_execute(&sql).await else {
        return Ok(files.iter().map(|f| f.version).collect());
    };
    // Which file failed: the first one the history does not have. The failed transaction
    // is rolled back first (the server ignores everything else until then).
    let _ = client.batch_execute("ROLLBACK").await;
    let done: Vec<i32> = match read_history(client).await {
        Ok(h) => files
            .iter()
            .map(|f| f.version)
            .filter(|v| h.iter().any(|r| r.0 == *v))
            .collect(),
        Err(_) => Vec::new(),
    };
    let failed = files
        .iter()
        .find(|f| !done.contains(&f.version))
        .map_or(files[0].version, |f| f.version);
    Err(MigrateError::from_pg(failed, &e))
}

/// The server's message and detail of a failed statement (for the target's error only).
fn server_words(cause: &MigrateError) -> String {
    match cause {
        MigrateError::Sql {
            message, detail, ..
        } => match detail {
            Some(d) => format!("{message}: {d}"),
            None => message.clone(),
        },
        other => other.to_string(),
    }
}

/// Indexes left INVALID, e.g. by a failed `CREATE INDEX CONCURRENTLY`.
async fn invalid(client: &Client) -> Vec<String> {
    const SQL: &str =
        "SELECT indexrelid::regclass::text AS index FROM pg_index WHERE NOT indisvalid ORDER BY 1";
    client
        .query(SQL, &[])
        .await
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r.try_get("index").ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a `-- drover:no-transaction` file statement by statement, each where
/// PostgreSQL's parser delimits it (one query holding two statements would be an
/// implicit transaction), then writes its history row exactly as refinery would.
async fn run_no_transaction(
    client: &Client,
    file: &super::set::MigrationFile,
) -> Result<(), MigrateError> {
    // A retry of CREATE INDEX CONCURRENTLY IF NOT EXISTS would skip the broken index
    // silently; refuse instead and say how to fix it.
    let before = invalid(client).await;
    if !before.is_empty() {
        return Err(MigrateError::NeedsAttention {
            version: file.version,
            why: format!(
                "invalid index(es) {} left by a failed CREATE INDEX CONCURRENTLY; drop them (DROP INDEX CONCURRENTLY …) and resume",
                before.join(", ")
            ),
            server: None,
        });
    }
    let statements = split_statements(&file.sql);
    for (n, stmt) in statements.iter().enumerate() {
        if let Err(e) = client.batch_execute(stmt).await {
            let cause = MigrateError::from_pg(file.version, &e);
            if cause.is_retryable() && n == 0 {
                return Err(cause);
            }
            let left = invalid(client).await;
            let shown: String = stmt.chars().take(200).collect();
            // The statement is the file's own text; the server's words about it may
            // quote rows and stay in `server`.
            let mut why = format!(
                "statement {} of {} failed: {shown}: {}",
                n + 1,
                statements.len(),
                cause.public()
            );
            if !left.is_empty() {
                why.push_str(&format!(
                    "; invalid index(es) left behind: {}",
                    left.join(", ")
                ));
            }
            return Err(MigrateError::NeedsAttention {
                version: file.version,
                why,
                server: Some(server_words(&cause)),
            });
        }
    }
    const INSERT: &str = "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES ($1, $2, $3, $4)";
    let applied_on = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    client
        .batch_execute(HISTORY_TABLE)
        .await
        .map_err(|e| MigrateError::from_pg(file.version, &e))?;
    client
        .execute(
            INSERT,
            &[
                &file.version,
                &file.name,
                &applied_on,
                &file.checksum.to_string(),
            ],
        )
        .await
        .map_err(|e| MigrateError::NeedsAttention {
            version: file.version,
            why: format!(
                "statements ran but the history row could not be written: {}",
                crate::db::describe(&e)
            ),
            server: None,
        })?;
    Ok(())
}
