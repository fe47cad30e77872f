//! Waves in the control DB: creating a frozen plan, reading progress, operator actions and
//! the state machine's transitions (each under the wave's row lock).
//!
//! Split by responsibility: here the handle and wave creation; `views` what the API
//! shows; `read` progress, lists and targets; `advance` operator actions and the
//! engine's steps. Everything is re-exported here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::plan::WaveRequest;
use super::redact::Audience;
pub use super::state::Counts;
use super::timeline;
use super::WaveError;
use crate::migrate::MigrationSet;
use crate::registry::Actor;
use crate::sets::PlanSource;

mod advance;
mod read;
mod views;

pub use views::{FailureView, PhaseView, TargetState, TargetView, WaveView};

/// Plan sources remembered by [`WaveStore::plan_source`] before the memory is cleared
/// (plans never change, so forgetting only costs a query).
const REMEMBERED_PLANS: usize = 4096;

/// Wave SQL over the control pool. Clones share the pool and the remembered plan sources.
#[derive(Clone)]
pub struct WaveStore {
    pool: Pool,
    plans: Arc<Mutex<HashMap<Uuid, PlanSource>>>,
}

impl WaveStore {
    /// A store over the control pool.
    pub fn new(pool: Pool) -> Self {
        WaveStore {
            pool,
            plans: Arc::default(),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Where wave `id`'s files come from ([`super::row::plan_source`]), remembered: the
    /// worker asks on every pass and for every target it claims.
    pub async fn plan_source(&self, id: Uuid) -> Result<PlanSource, WaveError> {
        let remembered = self
            .plans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned();
        if let Some(source) = remembered {
            return Ok(source);
        }
        let client = self.pool.get().await?;
        let source = super::row::plan_source(&**client, id)
            .await?
            .ok_or_else(|| WaveError::NotFound(id.to_string()))?;
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if plans.len() >= REMEMBERED_PLANS {
            plans.clear();
        }
        plans.insert(id, source.clone());
        Ok(source)
    }

    /// Freezes a plan and stores the wave with its targets.
    pub async fn create(
        &self,
        req: &WaveRequest,
        set: &MigrationSet,
        actor: &Actor,
    ) -> Result<WaveView, WaveError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let id = Self::create_in(&tx, req, set, actor).await?;
        tx.commit().await?;
        // Only operators and admins create waves.
        self.view(id, Audience::Operators).await
    }

    /// [`WaveStore::create`] inside the caller's transaction (the scheduler records the
    /// tick in the same one). Returns the wave's id.
    pub async fn create_in(
        tx: &tokio_postgres::Transaction<'_>,
        req: &WaveRequest,
        set: &MigrationSet,
        actor: &Actor,
    ) -> Result<Uuid, WaveError> {
        super::create::create_in(tx, req, set, actor).await
    }

    /// A wave's timeline, oldest first.
    pub async fn events(&self, id: Uuid) -> Result<Vec<timeline::WaveEvent>, WaveError> {
        const EXISTS: &str = "SELECT 1 FROM control_plane.waves WHERE id = $1";
        let client = self.pool.get().await?;
        if client.query_opt(EXISTS, &[&id]).await?.is_none() {
            return Err(WaveError::NotFound(id.to_string()));
        }
        timeline::events(&**client, id).await
    }
}
