//! Bounded history: how long each kind of row is kept, and the `prune` task that removes
//! what is older, on the leader only, every `prune_interval`.
//!
//! ```text
//!  every prune_interval, while this replica leads:
//!    events::history::prepare     the event tables' next months exist (partitions ahead)
//!    for each sweep in order:     step ──► rows removed: drover_pruned_rows_total{table} += n
//!                                   └─ more left? step again (leadership and shutdown checked
//!                                      between steps) : next sweep
//! ```
//!
//! A sweep is one table's rule, run by the module owning that table (one owner per table):
//! the event tables drop a month partition whose every row is past `event_retention` and
//! delete the edge month in batches ([`crate::events::history`]); the others delete in
//! batches of [`BATCH`] rows, one short statement each, so no lock is held for long and a
//! new leader simply starts again where rows remain. The console's expired sessions are a
//! sweep the console module hands in (`app` adds it), since the console sits above this
//! module.
//!
//! Every setting is a duration of at least one second; [`RetentionSettings`] is built by
//! `config` from the keys listed in `src/config/keys.rs`.

mod run;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::Pool;

use crate::db::DbError;

pub use run::Pruner;

/// Rows one delete statement removes at most: a few milliseconds of work, so a batch
/// never holds locks for long and the feed and the writers go on beside it.
pub const BATCH: i64 = 1000;

/// How long each kind of history is kept, and how often the leader prunes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Tenant, wave and control events (the feed, the timelines).
    pub events: Duration,
    /// Webhook deliveries that succeeded, after they finished.
    pub webhook_delivered: Duration,
    /// Webhook deliveries that gave up (`dead`), after they gave up.
    pub webhook_dead: Duration,
    /// Analysis check measurements, after they were taken.
    pub evaluations: Duration,
    /// Console sessions, after they expired.
    pub console_sessions: Duration,
    /// Handled schedule ticks, after they were handled (a schedule's newest is kept).
    pub schedule_fires: Duration,
    /// How often the leader prunes.
    pub prune_interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        RetentionSettings {
            events: Duration::from_secs(180 * DAY),
            webhook_delivered: Duration::from_secs(14 * DAY),
            webhook_dead: Duration::from_secs(90 * DAY),
            evaluations: Duration::from_secs(30 * DAY),
            console_sessions: Duration::from_secs(DAY),
            schedule_fires: Duration::from_secs(90 * DAY),
            prune_interval: Duration::from_secs(600),
        }
    }
}

/// A retention setting: a duration of at least one second (the configuration's parser).
pub fn parse_retention(v: &str) -> Result<Duration, String> {
    match crate::duration::parse_duration(v) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        Ok(_) => Err("must be at least 1s".into()),
        Err(e) => Err(e),
    }
}

/// What one step of a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Rows removed.
    pub rows: u64,
    /// Whether another step may find more to remove now.
    pub more: bool,
}

impl Step {
    /// A batch delete: more may be left when the batch was full.
    pub fn batch(rows: u64) -> Step {
        Step {
            rows,
            more: rows >= BATCH as u64,
        }
    }
}

/// The future one step of a sweep is.
pub type StepFuture = Pin<Box<dyn Future<Output = Result<Step, DbError>> + Send>>;

/// One table's rule: `step` removes one batch (or one partition) past retention.
pub struct Sweep {
    /// The table: the metric's label and the logs' field.
    pub table: &'static str,
    step: Box<dyn Fn(Pool) -> StepFuture + Send + Sync>,
}

impl Sweep {
    /// A sweep of `table` whose steps are `step`.
    pub fn new(
        table: &'static str,
        step: impl Fn(Pool) -> StepFuture + Send + Sync + 'static,
    ) -> Sweep {
        Sweep {
            table,
            step: Box::new(step),
        }
    }

    /// A sweep whose step takes one pooled connection and runs `batch` on it.
    pub fn batched<F, Fut>(table: &'static str, batch: F) -> Sweep
    where
        F: Fn(deadpool_postgres::Object) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = Result<u64, DbError>> + Send + 'static,
    {
        Sweep::new(table, move |pool: Pool| {
            let batch = batch.clone();
            Box::pin(async move {
                let client = pool.get().await?;
                Ok(Step::batch(batch(client).await?))
            })
        })
    }
}

/// The sweeps of the domains below this module, in the order a round runs them.
pub fn domain_sweeps(s: &RetentionSettings) -> Vec<Sweep> {
    let mut sweeps: Vec<Sweep> = crate::events::history::TABLES
        .iter()
        .map(|&table| event_sweep(table, s.events))
        .collect();
    let (delivered, dead) = (s.webhook_delivered, s.webhook_dead);
    sweeps.push(Sweep::batched("webhook_deliveries", move |c| async move {
        let d = crate::events::webhooks::outbox::prune(&**c, "delivered", delivered, BATCH).await?;
        Ok(d + crate::events::webhooks::outbox::prune(&**c, "dead", dead, BATCH).await?)
    }));
    let evaluations = s.evaluations;
    sweeps.push(Sweep::batched(
        "wave_check_evaluations",
        move |c| async move {
            crate::waves::analysis::run::prune_evaluations(&**c, evaluations, BATCH).await
        },
    ));
    let fires = s.schedule_fires;
    sweeps.push(Sweep::batched("schedule_fires", move |c| async move {
        crate::schedule::fires::prune(&**c, fires, BATCH).await
    }));
    sweeps
}

/// An event table's sweep: a whole month partition past retention first, one per step;
/// then the rows past it that remain, a batch per step. A month whose lock is busy ends
/// the table's sweep for this round.
fn event_sweep(table: &'static str, retention: Duration) -> Sweep {
    use crate::events::history;
    Sweep::new(table, move |pool: Pool| {
        Box::pin(async move {
            let mut client = pool.get().await?;
            match history::drop_expired(&mut client, table, retention).await? {
                history::Dropped::Month(rows) => return Ok(Step { rows, more: true }),
                history::Dropped::Busy => {
                    return Ok(Step {
                        rows: 0,
                        more: false,
                    })
                }
                history::Dropped::Nothing => {}
            }
            Ok(Step::batch(
                history::delete_batch(&**client, table, retention, BATCH).await?,
            ))
        })
    })
}

/// Failures of a prune round; the next round tries again.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The control database failed during `table`'s sweep.
    #[error("pruning {table}: {source}")]
    Sweep {
        /// The table being pruned.
        table: &'static str,
        #[source]
        source: DbError,
    },
    /// The partitions ahead could not be created.
    #[error("creating the event tables' next months: {0}")]
    Prepare(#[source] DbError),
}

impl RetentionError {
    /// Whether the next round may succeed where this one failed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RetentionError::Sweep { source, .. } | RetentionError::Prepare(source) => {
                source.is_retryable()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_below_one_second_or_without_a_unit_it_knows_is_refused() {
        assert_eq!(
            parse_retention("180d"),
            Ok(Duration::from_secs(180 * 86_400))
        );
        assert_eq!(parse_retention("1s"), Ok(Duration::from_secs(1)));
        assert!(parse_retention("500ms")
            .unwrap_err()
            .contains("at least 1s"));
        assert!(parse_retention("0").is_err());
        assert!(parse_retention("ten days").is_err());
        assert!(parse_retention("3w").is_err());
    }

    #[test]
    fn a_full_batch_asks_for_another_and_a_short_one_does_not() {
        assert!(Step::batch(BATCH as u64).more);
        assert!(!Step::batch(BATCH as u64 - 1).more);
        assert!(!Step::batch(0).more);
    }

    #[test]
    fn a_failure_no_retry_fixes_is_reported_as_such() {
        let e = RetentionError::Prepare(DbError::Internal("x".into()));
        assert!(!e.is_retryable());
    }
}
