//! The local buffer: tenants claimed ahead of a free slot, so a slot that frees starts its
//! next tenant without waiting for a claim (and may open its connection early, see
//! `ahead`). Small — [`prefetch`] for the replica's slots — and refilled when it falls to
//! its low-water mark, not on a timer. Buffered targets are leased like running ones
//! (their wave's caps count them); their leases are renewed together, given back when
//! their wave stops taking claims and on shutdown, and recovered by expiry after a crash.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::super::claim::Claimed;

/// Tenants claimed ahead for `slots` worker slots: a quarter, at least one, at most eight.
pub fn prefetch(slots: usize) -> usize {
    (slots / 4).clamp(1, 8)
}

/// Claimed tenants not started yet, oldest first.
#[derive(Default)]
pub struct Buffer {
    items: VecDeque<Claimed>,
    /// When the held leases (buffer and unrecorded outcomes) were last renewed.
    renewed: Option<Instant>,
}

impl Buffer {
    /// How many to claim for `free` slots: enough to fill them and the buffer, or nothing
    /// while the buffer is above its low-water mark and no slot would idle.
    pub fn want(&self, free: usize, prefetch: usize) -> usize {
        let low_water = prefetch / 2;
        if self.items.len() > low_water && free == 0 {
            return 0;
        }
        (free + prefetch).saturating_sub(self.items.len())
    }

    /// Queues claimed tenants; those to start at once go first.
    pub fn extend(&mut self, claimed: Vec<Claimed>) {
        for c in claimed {
            if c.start_now {
                self.items.push_front(c);
            } else {
                self.items.push_back(c);
            }
        }
    }

    /// The next tenant to start.
    pub fn pop(&mut self) -> Option<Claimed> {
        self.items.pop_front()
    }

    /// Takes out the tenants of waves not in `active` (halted, paused, aborted, done).
    pub fn drop_inactive(&mut self, active: &[Uuid]) -> Vec<Claimed> {
        let (keep, gone): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.items)
            .into_iter()
            .partition(|c| active.contains(&c.wave_id));
        self.items = keep;
        gone.into()
    }

    /// Everything buffered, leaving it empty (shutdown).
    pub fn drain(&mut self) -> Vec<Claimed> {
        self.items.drain(..).collect()
    }

    /// The buffered tenants, for lease renewal.
    pub fn claims(&self) -> Vec<Claimed> {
        self.items.iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True (and the clock reset) when held leases are due for renewal: every third of
    /// the lease, like a running tenant's heartbeat.
    pub fn renewal_due(&mut self, lease: Duration) -> bool {
        let due = self.renewed.is_none_or(|t| t.elapsed() >= lease / 3);
        if due {
            self.renewed = Some(Instant::now());
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_buffer_claims_for_its_free_slots_and_its_prefetch() {
        let b = Buffer::default();
        assert_eq!(b.want(0, 4), 4);
        assert_eq!(b.want(3, 4), 7);
    }

    #[test]
    fn prefetch_is_a_quarter_of_the_slots_between_one_and_eight() {
        assert_eq!(prefetch(16), 4);
        assert_eq!(prefetch(2), 1);
        assert_eq!(prefetch(1000), 8);
    }
}
