//! Claim step 2: choose which claimable targets to take without going over the wave's
//! caps — `max_concurrency` over every replica, and per database host the lower of
//! `max_per_host` and its adaptive limit ([`crate::waves::host_limits`]). The running
//! counts are read under the wave's row lock, so no other claimer moves them meanwhile.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::lock::Locked;
use crate::waves::host_limits::RUNNING_AND_LIMITS;
use crate::waves::WaveError;

/// What runs now, per host, and each host's cap.
#[derive(Debug, Default)]
pub(super) struct HostLoad {
    running: HashMap<String, i64>,
    /// Hosts whose adaptive limit has a row; the rest run at `max_per_host`.
    caps: HashMap<String, i64>,
    max_per_host: i64,
}

impl HostLoad {
    /// Tenants running over every host.
    pub fn total(&self) -> i64 {
        self.running.values().sum()
    }

    /// Counts one more tenant on `host` when its cap allows it.
    fn admit(&mut self, host: &str) -> bool {
        let cap = self.caps.get(host).copied().unwrap_or(self.max_per_host);
        let on_host = self.running.entry(host.to_string()).or_default();
        if *on_host >= cap {
            return false;
        }
        *on_host += 1;
        true
    }
}

/// The wave's running tenants and host caps.
pub(super) async fn load(tx: &Transaction<'_>, locked: &Locked) -> Result<HostLoad, WaveError> {
    let max_host = locked.wave.max_per_host;
    let mut load = HostLoad {
        max_per_host: max_host as i64,
        ..HostLoad::default()
    };
    let stmt = tx.prepare_cached(RUNNING_AND_LIMITS).await?;
    for r in tx.query(&stmt, &[&locked.wave.id]).await? {
        let host: String = r.try_get("db_host")?;
        if let Some(limit) = r.try_get::<_, Option<i32>>("current_limit")? {
            load.caps.insert(host.clone(), limit.min(max_host) as i64);
        }
        load.running.insert(host, r.try_get("running")?);
    }
    Ok(load)
}

/// Claimable targets of the current phase (and earlier ones: a retried canary), in the
/// order they are taken, as (tenant, host). Four times `max_concurrency` of them: enough
/// to fill the free slots past hosts that are at their cap.
pub(super) async fn candidates(
    tx: &Transaction<'_>,
    locked: &Locked,
) -> Result<Vec<(Uuid, String)>, WaveError> {
    const CANDIDATES: &str = "SELECT tenant_id, slug, db_host FROM control_plane.wave_targets \
         WHERE wave_id = $1 AND phase <= $2 \
           AND ((state = 'pending' AND next_attempt_at <= now()) OR (state = 'running' AND lease_expires_at <= now())) \
         ORDER BY phase, slug LIMIT $3 FOR UPDATE SKIP LOCKED";
    let w = &locked.wave;
    let stmt = tx.prepare_cached(CANDIDATES).await?;
    tx.query(
        &stmt,
        &[&w.id, &w.current_phase, &(w.max_concurrency as i64 * 4)],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get("tenant_id")?, r.try_get("db_host")?)))
    .collect()
}

/// Up to `free` of `candidates`, in order, skipping those whose host is at its cap.
pub(super) fn pick(load: &mut HostLoad, candidates: &[(Uuid, String)], free: usize) -> Vec<Uuid> {
    let mut picked = Vec::new();
    for (tenant, host) in candidates {
        if picked.len() >= free {
            break;
        }
        if load.admit(host) {
            picked.push(*tenant);
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(running: &[(&str, i64)], caps: &[(&str, i64)], max_per_host: i64) -> HostLoad {
        HostLoad {
            running: running.iter().map(|(h, n)| (h.to_string(), *n)).collect(),
            caps: caps.iter().map(|(h, n)| (h.to_string(), *n)).collect(),
            max_per_host,
        }
    }

    fn on(hosts: &[&str]) -> Vec<(Uuid, String)> {
        hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (Uuid::from_u128(i as u128 + 1), h.to_string()))
            .collect()
    }

    #[test]
    fn a_host_at_max_per_host_is_passed_over_for_the_next_one() {
        let mut l = load(&[("a", 1)], &[], 2);

        let picked = pick(&mut l, &on(&["a", "a", "b", "b", "b"]), 10);

        assert_eq!(
            picked,
            vec![Uuid::from_u128(1), Uuid::from_u128(3), Uuid::from_u128(4)]
        );
        assert_eq!(l.total(), 4);
    }

    #[test]
    fn a_lowered_adaptive_limit_caps_its_host_and_free_caps_the_total() {
        let mut l = load(&[], &[("a", 1)], 4);

        let picked = pick(&mut l, &on(&["a", "a", "b", "b", "b"]), 3);

        assert_eq!(
            picked,
            vec![Uuid::from_u128(1), Uuid::from_u128(3), Uuid::from_u128(4)]
        );
    }
}
