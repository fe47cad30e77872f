//! The completion batch: outcomes of finished tenants waiting to be recorded together
//! (`claim::record`, one control-DB transaction). A batch is due when it holds
//! [`BATCH_ITEMS`] outcomes, when its oldest is `record_batch_age` old
//! ([`RECORD_BATCH_AGE`] by default), or at once when it holds a final failure: the
//! failure budget counts failures in the recording transaction, and claims must not run
//! ahead of it. While more than [`BACKLOG_ITEMS`] wait (the control DB refuses or lags),
//! the replica claims nothing new.

use std::time::{Duration, Instant};

use super::super::claim::{Claimed, Finished};

/// Outcomes that make a batch due by their number.
pub const BATCH_ITEMS: usize = 64;

/// Default of `record_batch_age`: how long the oldest outcome waits for others.
pub const RECORD_BATCH_AGE: &str = "25ms";

/// Outcomes waiting beyond which the replica stops claiming until they are recorded.
pub const BACKLOG_ITEMS: usize = 4 * BATCH_ITEMS;

/// Outcomes not yet recorded.
#[derive(Default)]
pub struct Batch {
    items: Vec<Finished>,
    /// When the oldest waiting outcome arrived.
    since: Option<Instant>,
    /// A final failure waits: record it before the next claim.
    urgent: bool,
}

impl Batch {
    /// Adds an outcome; true when that makes the batch due by size or urgency.
    pub fn push(&mut self, f: Finished) -> bool {
        if let Finished::Failed { claim, error, .. } = &f {
            let retry = error.is_retryable() && claim.attempt < claim.run.max_attempts;
            self.urgent |= !retry && !claim.run.dry_run;
        }
        self.since.get_or_insert_with(Instant::now);
        self.items.push(f);
        self.urgent || self.items.len() >= BATCH_ITEMS
    }

    /// When the batch falls due by age (`None`: empty).
    pub fn deadline(&self, age: Duration) -> Option<Instant> {
        self.since.map(|t| t + age)
    }

    /// Due now: full, urgent, or its oldest outcome has waited `age`.
    pub fn due(&self, age: Duration) -> bool {
        self.urgent
            || self.items.len() >= BATCH_ITEMS
            || self.deadline(age).is_some_and(|d| d <= Instant::now())
    }

    /// More outcomes wait than the replica may run ahead of.
    pub fn backlogged(&self) -> bool {
        self.items.len() > BACKLOG_ITEMS
    }

    /// Everything waiting, leaving the batch empty.
    pub fn take(&mut self) -> Vec<Finished> {
        self.since = None;
        self.urgent = false;
        std::mem::take(&mut self.items)
    }

    /// Puts back outcomes whose recording failed, ahead of newer ones, so they are
    /// tried again with the next batch (the leases keep them ours meanwhile).
    pub fn restore(&mut self, mut items: Vec<Finished>) {
        if items.is_empty() {
            return;
        }
        items.append(&mut self.items);
        self.items = items;
        self.since = Some(Instant::now());
    }

    /// The targets waiting, for lease renewal.
    pub fn claims(&self) -> Vec<Claimed> {
        self.items.iter().map(|f| f.claim().clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
}
