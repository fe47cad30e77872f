//! The event tables' storage over time: monthly partitions (control-migrations/V20) made
//! ahead of need, and the pruning of events past `event_retention`, for the retention task
//! of [`crate::retention`] (which runs it on the leader only).
//!
//! ```text
//!  prepare:      this month and the next three exist for every event table
//!                (control_plane.event_partition_create: build beside, attach: no reader waits)
//!  drop_expired: the oldest month partition whose end is past retention ──► DROP TABLE
//!                (one brief exclusive lock on the parent, given up after LOCK_TIMEOUT)
//!  delete_batch: the rows past retention that remain (the edge month, the default
//!                partition), BATCH at a time, oldest first
//! ```
//!
//! The feed pages by (created_at, id) through every partition's index, so dropping a month
//! changes nothing for a reader but which rows exist; the outbox trigger lives on the
//! partitioned tables and fires for any partition.

use std::time::Duration;

use tokio_postgres::GenericClient;

use crate::db::DbError;

/// The event tables, each partitioned by month.
pub const TABLES: [&str; 3] = ["tenant_events", "wave_events", "control_events"];

/// Months made ahead of the current one.
pub const MONTHS_AHEAD: i32 = 3;

/// How long dropping a partition waits for its exclusive lock before giving up until the
/// next round: while it waits, readers of the table queue behind it.
const LOCK_TIMEOUT: &str = "500ms";

/// Makes sure this month and the next [`MONTHS_AHEAD`] have partitions in every event
/// table; returns how many it created.
pub async fn prepare(client: &impl GenericClient) -> Result<u32, DbError> {
    const SQL: &str = "SELECT control_plane.event_partition_create($1, \
         (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => $2))::date) AS created";
    let mut created = 0;
    for table in TABLES {
        for ahead in 0..=MONTHS_AHEAD {
            let row = client.query_one(SQL, &[&table, &ahead]).await?;
            if row.try_get::<_, bool>("created")? {
                tracing::info!(table, ahead, "created an event partition");
                created += 1;
            }
        }
    }
    Ok(created)
}

/// What [`drop_expired`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A month partition holding this many rows is gone.
    Month(u64),
    /// No month partition is wholly past retention.
    Nothing,
    /// One is, but its lock was not free within [`LOCK_TIMEOUT`]: the next round tries
    /// again (deleting its rows one by one meanwhile would be the slow way).
    Busy,
}

/// Drops the oldest month partition of `table` whose every row is older than `older_than`
/// (its month ended before then).
pub async fn drop_expired(
    client: &mut tokio_postgres::Client,
    table: &'static str,
    older_than: Duration,
) -> Result<Dropped, DbError> {
    // The month is read back from the partition's name, which only V20's function gives.
    const FIND: &str = "SELECT c.relname AS name FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = to_regclass('control_plane.' || $1) \
           AND c.relname ~ '_y[0-9]{4}m[0-9]{2}$' \
           AND (to_date(right(c.relname, 7), 'YYYY\"m\"MM') + interval '1 month') AT TIME ZONE 'UTC' \
               <= now() - make_interval(secs => $2) \
         ORDER BY c.relname LIMIT 1";
    let Some(row) = client
        .query_opt(FIND, &[&table, &older_than.as_secs_f64()])
        .await?
    else {
        return Ok(Dropped::Nothing);
    };
    let name: String = row.try_get("name")?;
    let Some(ident) = partition_ident(table, &name) else {
        return Ok(Dropped::Nothing);
    };
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        .await?;
    let dropped = async {
        let rows: i64 = tx
            .query_one(&format!("SELECT count(*) AS n FROM {ident}"), &[])
            .await?
            .try_get("n")?;
        tx.batch_execute(&format!("DROP TABLE {ident}")).await?;
        Ok::<_, tokio_postgres::Error>(rows as u64)
    }
    .await;
    match dropped {
        Ok(rows) => {
            tx.commit().await?;
            tracing::info!(table, partition = %name, rows, "dropped an event partition past retention");
            Ok(Dropped::Month(rows))
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            tracing::info!(table, partition = %name, "event partition busy; dropped next round");
            Ok(Dropped::Busy)
        }
        Err(e) => Err(e.into()),
    }
}

/// `control_plane."<name>"` when `name` is a month partition of `table` as V20 names them
/// (`<table>_yYYYYmMM`); the catalog gave it, the check keeps anything else out of the SQL.
fn partition_ident(table: &str, name: &str) -> Option<String> {
    let month = name.strip_prefix(table)?.strip_prefix("_y")?;
    let ok = month.len() == 7
        && month
            .char_indices()
            .all(|(i, c)| if i == 4 { c == 'm' } else { c.is_ascii_digit() });
    ok.then(|| format!("control_plane.\"{name}\""))
}

/// Deletes at most `batch` events of `table` older than `older_than`, oldest first;
/// returns how many.
pub async fn delete_batch(
    client: &impl GenericClient,
    table: &'static str,
    older_than: Duration,
    batch: i64,
) -> Result<u64, DbError> {
    if !TABLES.contains(&table) {
        return Err(DbError::Internal(format!("{table} is not an event table")));
    }
    // The key is (id, created_at): the bound on created_at lets the planner skip the
    // partitions that hold nothing this old.
    let sql = format!(
        "DELETE FROM control_plane.{table} e \
         WHERE e.created_at < now() - make_interval(secs => $1) AND (e.id, e.created_at) IN \
           (SELECT id, created_at FROM control_plane.{table} \
            WHERE created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2)"
    );
    Ok(client
        .execute(sql.as_str(), &[&older_than.as_secs_f64(), &batch])
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_month_partition_of_the_table_reaches_the_sql() {
        assert_eq!(
            partition_ident("wave_events", "wave_events_y2026m01").as_deref(),
            Some("control_plane.\"wave_events_y2026m01\"")
        );
        assert_eq!(partition_ident("wave_events", "wave_events_default"), None);
        assert_eq!(
            partition_ident("wave_events", "tenant_events_y2026m01"),
            None
        );
        assert_eq!(partition_ident("wave_events", "wave_events_y2026m1x"), None);
        assert_eq!(
            partition_ident("wave_events", "wave_events_y2026m01\"; --"),
            None
        );
    }
}
