//! Connecting ahead: while its slots are busy, the replica opens the connections of the
//! tenants waiting in its buffer — connect, try the tenant's advisory lock and read its
//! history in one round trip (`migrate::tenant::open`) — so a slot that frees starts its
//! next tenant with that work done. Only buffered tenants are opened ahead, and they are
//! claimed, so the per-host caps already count them: no tenant server sees more of this
//! wave's connections than its cap. Dry runs are not opened ahead. A connection whose
//! tenant is given back is closed (which releases its lock); one that failed to open is
//! simply opened again by the run.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::{Executor, Prepared};
use crate::migrate::tenant::Opened;
use crate::migrate::TenantConnection;
use crate::waves::claim::Claimed;

/// A tenant target's identity: a new attempt is a new key.
type Key = (Uuid, Uuid, i32);

fn key(c: &Claimed) -> Key {
    (c.wave_id, c.tenant_id, c.attempt)
}

/// Connections being opened or open, per buffered tenant; dropping one closes it.
#[derive(Default)]
pub struct Ahead {
    open: HashMap<Key, tokio::task::JoinHandle<Option<(TenantConnection, Opened)>>>,
}

impl Drop for Ahead {
    fn drop(&mut self) {
        for (_, h) in self.open.drain() {
            h.abort();
        }
    }
}

impl Executor {
    fn ahead(&self) -> std::sync::MutexGuard<'_, Ahead> {
        self.ahead.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts opening the connection of every buffered tenant that has none yet.
    pub(super) fn connect_ahead(self: &Arc<Self>) {
        let waiting = self.buffered().claims();
        let mut ahead = self.ahead();
        for c in waiting {
            if c.run.dry_run || ahead.open.contains_key(&key(&c)) {
                continue;
            }
            let me = self.clone();
            let k = key(&c);
            let task = tokio::spawn(async move {
                let Ok(Prepared::Go(limits)) = me.prepare(&c).await else {
                    return None;
                };
                match me.open(&c, &limits).await {
                    Ok(opened) => Some(opened),
                    Err(e) => {
                        tracing::debug!(error = %e, slug = %c.slug, "connecting ahead failed; the run connects again");
                        None
                    }
                }
            });
            ahead.open.insert(k, task);
        }
    }

    /// The connection opened ahead for `c`, if any (waiting for it to finish opening).
    pub(super) async fn take_ahead(&self, c: &Claimed) -> Option<(TenantConnection, Opened)> {
        let task = self.ahead().open.remove(&key(c))?;
        task.await.ok().flatten()
    }

    /// Closes the connections opened ahead for tenants given back.
    pub(super) fn close_ahead(&self, given_back: &[Claimed]) {
        let mut ahead = self.ahead();
        for c in given_back {
            if let Some(h) = ahead.open.remove(&key(c)) {
                h.abort();
            }
        }
    }
}
