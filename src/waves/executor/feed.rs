//! Keeping the slots fed: buffered tenants started into free slots, one claim over every
//! active wave when the buffer is at its low-water mark, the held leases renewed, and the
//! buffered tenants of stopped waves given back.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{buffer, Executor};
use crate::waves::claim::{self, Claimed};
use crate::waves::WaveError;

impl Executor {
    /// Gives back buffered tenants of waves that stopped taking claims (halted, paused,
    /// aborted): they must not start after the stop.
    pub(super) async fn release_stopped(&self, active: &[uuid::Uuid]) -> Result<(), WaveError> {
        let gone = self.buffered().drop_inactive(active);
        self.close_ahead(&gone);
        if !gone.is_empty() {
            claim::release(
                self.store.pool(),
                &self.owner,
                &gone.iter().collect::<Vec<_>>(),
            )
            .await?;
        }
        Ok(())
    }

    /// Renews the leases of tenants held but not running (buffered, or finished and not
    /// recorded yet), every third of the lease, in one statement.
    pub(super) async fn renew_held(&self) {
        let held: Vec<Claimed> = {
            let mut buffer = self.buffered();
            if !buffer.renewal_due(self.cfg.lease) {
                return;
            }
            let mut held = buffer.claims();
            held.extend(self.batch().claims());
            held
        };
        let refs: Vec<&Claimed> = held.iter().collect();
        if let Err(e) =
            claim::renew_held(self.store.pool(), &self.owner, &refs, self.cfg.lease).await
        {
            tracing::warn!(error = %e, "lease renewal of held tenants failed");
        }
    }

    /// Starts buffered tenants while slots are free; opens the rest's connections ahead.
    pub(super) fn start_buffered(self: &Arc<Self>, slots: &Arc<Semaphore>, jobs: &mut JoinSet<()>) {
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            let Some(c) = self.buffered().pop() else {
                return;
            };
            let me = self.clone();
            jobs.spawn(async move {
                me.clone().job(c).await;
                drop(permit);
                me.wake.notify_one();
            });
        }
        // Every slot is busy: the tenants left wait with their connections opening.
        self.connect_ahead();
    }

    /// One claim over every active wave when the buffer is at its low-water mark; the
    /// claimed tenants start in the free slots, the rest wait in the buffer. Returns how
    /// many were claimed.
    pub(super) async fn claim_and_start(
        self: &Arc<Self>,
        active: &[uuid::Uuid],
        slots: &Arc<Semaphore>,
        jobs: &mut JoinSet<()>,
    ) -> Result<usize, WaveError> {
        if self.batch().backlogged() {
            return Ok(0);
        }
        let free = slots.available_permits();
        let want = self.buffered().want(free, buffer::prefetch(self.cfg.slots));
        if want == 0 || active.is_empty() {
            return Ok(0);
        }
        let want = claim::Want { free, total: want };
        let claimed = self.claim(active, want).await?;
        let n = claimed.len();
        self.buffered().extend(claimed);
        self.start_buffered(slots, jobs);
        Ok(n)
    }

    /// Claims for `want` over `waves`; waves whose files this replica has not fetched yet
    /// are fetched and claimed again, and a replica whose files differ from a plan leaves
    /// that wave to others.
    pub(super) async fn claim(
        &self,
        waves: &[uuid::Uuid],
        want: claim::Want,
    ) -> Result<Vec<Claimed>, WaveError> {
        let pool = self.store.pool();
        let lease = self.cfg.lease;
        let accept = |id, s: &crate::sets::PlanSource| self.holds(id, s);
        let first = claim::claim(pool, waves, &self.owner, lease, want, accept).await?;
        if first.refused.is_empty() || !self.fetch_refused(&first.refused).await {
            return Ok(first.took);
        }
        let mut took = first.took;
        let ids: Vec<uuid::Uuid> = first.refused.iter().map(|r| r.0).collect();
        let left = claim::Want {
            free: want.free.saturating_sub(took.len()),
            total: want.total.saturating_sub(took.len()),
        };
        let accept = |id, s: &crate::sets::PlanSource| self.holds(id, s);
        took.extend(
            claim::claim(pool, &ids, &self.owner, lease, left, accept)
                .await?
                .took,
        );
        Ok(took)
    }
}
