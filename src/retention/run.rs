//! The `prune` task: one round every `prune_interval` while this replica leads.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use prometheus::IntCounterVec;
use tokio_util::sync::CancellationToken;

use super::{RetentionError, Sweep};
use crate::schedule::Leadership;

/// The leader's pruner: the sweeps, their order, and where it counts what it removed.
pub struct Pruner {
    pool: Pool,
    sweeps: Vec<Sweep>,
    interval: Duration,
    leadership: Arc<Leadership>,
    /// `drover_pruned_rows_total{table}`.
    pruned: IntCounterVec,
}

impl Pruner {
    /// A pruner running `sweeps` in order every `interval` while `leadership` says this
    /// replica leads.
    pub fn new(
        pool: Pool,
        sweeps: Vec<Sweep>,
        interval: Duration,
        leadership: Arc<Leadership>,
        pruned: IntCounterVec,
    ) -> Pruner {
        for s in &sweeps {
            // Every table's series exists from the first scrape, at 0.
            pruned.with_label_values(&[s.table]);
        }
        Pruner {
            pool,
            sweeps,
            interval,
            leadership,
            pruned,
        }
    }

    /// Runs until `shutdown`: waits one interval, then prunes while leading.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.cancelled() => return,
            }
            if !self.leadership.is_leader() {
                continue;
            }
            match self.round(&shutdown).await {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, "pruned history past retention"),
                Err(e) => {
                    tracing::warn!(error = %e, retryable = e.is_retryable(), "prune round failed")
                }
            }
        }
    }

    /// One round: the partitions ahead, then each sweep until it has nothing left (or
    /// leadership or the daemon ends; a sweep that fails is logged and the next one runs).
    /// Returns the rows removed.
    #[tracing::instrument(skip_all)]
    pub async fn round(&self, shutdown: &CancellationToken) -> Result<u64, RetentionError> {
        {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| RetentionError::Prepare(e.into()))?;
            crate::events::history::prepare(&**client)
                .await
                .map_err(RetentionError::Prepare)?;
        }
        let mut total = 0;
        for sweep in &self.sweeps {
            loop {
                if shutdown.is_cancelled() || !self.leadership.is_leader() {
                    return Ok(total);
                }
                let step = match (sweep.step)(self.pool.clone()).await {
                    Ok(step) => step,
                    // One table's failure leaves the others to prune this round.
                    Err(source) => {
                        let e = RetentionError::Sweep {
                            table: sweep.table,
                            source,
                        };
                        tracing::warn!(error = %e, retryable = e.is_retryable(), "prune sweep failed");
                        break;
                    }
                };
                self.pruned
                    .with_label_values(&[sweep.table])
                    .inc_by(step.rows);
                total += step.rows;
                if !step.more {
                    break;
                }
            }
        }
        Ok(total)
    }
}
