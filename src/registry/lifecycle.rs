//! Registry writes for provisioning and deprovisioning: the steps that bracket work on the
//! tenant's database (done by `crate::provision`, never inside these transactions).
//!
//! ```text
//!  provisioning ──finish_provisioning──► active        (+ migrated, provisioned)
//!  any live     ──begin_delete─────────► deleting      (+ deleting {drop_database})
//!  deleting     ──finish_delete────────► deleted       (+ deleted {database_dropped, …})
//!  any          ──record_error─────────► (unchanged)   (+ error {operation, step, error})
//!  provisioning ──record_provisioning_error► (unchanged, provisioning_error set,
//!                                               retry schedule set or cleared) (+ error)
//! ```
//!
//! A failed provisioning's retry schedule (`provision_attempts`, `provision_retry_at`) is
//! on the tenant row, so any replica resumes it ([`Registry::due_provisioning_retries`]);
//! activation clears it.
//!
//! Placement: [`Registry::create_placed`] counts live tenants per server and inserts the
//! new one under one transaction-level advisory lock, so two creates at once cannot both
//! take a server's last place.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{insert_row, record_event, tenant_from_row, Actor, Registry, RegistryError, Tenant};
use super::{NewTenant, ProvisioningError, TenantStatus, Transition};

/// When a failed provisioning is tried again, as recorded with the failure.
#[derive(Debug, Clone, Copy)]
pub struct RetrySchedule {
    /// Attempts failed so far (this one included).
    pub attempts: u32,
    /// The wait before the next; `None`: no retry is scheduled.
    pub retry_in: Option<std::time::Duration>,
}

/// A tenant whose provisioning retry is overdue.
#[derive(Debug, Clone, Copy)]
pub struct DueRetry {
    pub tenant_id: Uuid,
    /// Attempts failed so far.
    pub attempts: u32,
}

/// Transaction-level advisory lock serializing placement ("drover" in ASCII, then 12).
const PLACEMENT_LOCK: i64 = 0x6472_6f76_6572_0012;

/// Live tenants per server name.
async fn loads(tx: &impl GenericClient) -> Result<BTreeMap<String, i64>, RegistryError> {
    const SQL: &str = "SELECT server, count(*) AS tenants FROM control_plane.tenants \
         WHERE deleted_at IS NULL AND server IS NOT NULL GROUP BY server";
    let rows = tx.query(SQL, &[]).await?;
    rows.iter()
        .map(|r| Ok((r.try_get("server")?, r.try_get("tenants")?)))
        .collect()
}

/// Whether the tenant was created with `provision: true`: then only its provisioning job
/// may make it active (an early activation would hand out a DSN for a database that does
/// not exist yet).
pub(super) async fn created_for_provisioning(
    tx: &impl GenericClient,
    id: Uuid,
) -> Result<bool, RegistryError> {
    const SQL: &str = "SELECT EXISTS (SELECT 1 FROM control_plane.tenant_events \
         WHERE tenant_id = $1 AND event_type = 'created' AND payload->>'provision' = 'true') AS provisioned";
    Ok(tx.query_one(SQL, &[&id]).await?.try_get("provisioned")?)
}

/// The error for activating a tenant whose provisioning job has not finished.
pub(super) fn job_activates(slug: &str) -> RegistryError {
    RegistryError::IllegalTransition {
        slug: slug.to_string(),
        verb: "activate (it becomes active when its provisioning job finishes; see POST /v1/tenants/{slug}/provision)",
        from: "provisioning".into(),
    }
}

/// The schema versions a new tenant's first migration run went from and to, and the ones
/// it applied (the `migrated` event's payload).
#[derive(Debug, Clone, Copy)]
pub struct Reached<'a> {
    pub from: Option<i32>,
    pub to: Option<i32>,
    pub applied: &'a [i32],
}

impl Registry {
    async fn lock_by_id(tx: &impl GenericClient, id: Uuid) -> Result<Tenant, RegistryError> {
        const SQL: &str = concat!(
            "SELECT ",
            tenant_cols!(),
            " FROM control_plane.tenants WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
        );
        match tx.query_opt(SQL, &[&id]).await? {
            Some(row) => tenant_from_row(&row),
            None => Err(RegistryError::NotFound(id.to_string())),
        }
    }

    /// Locks the live tenant with this id inside `tx` for an external provisioner's request
    /// (written in the same transaction), and takes its retry off the schedule: the request
    /// is the retry, and the resume task must not start another while it is open.
    pub async fn hold_for_request(
        tx: &impl GenericClient,
        id: Uuid,
    ) -> Result<Tenant, RegistryError> {
        const SQL: &str =
            "UPDATE control_plane.tenants SET provision_retry_at = NULL WHERE id = $1";
        let t = Self::lock_by_id(tx, id).await?;
        tx.execute(SQL, &[&id]).await?;
        Ok(t)
    }

    /// The live tenant with this id (a provisioning job re-reads its tenant under its lock).
    pub async fn get_by_id(&self, id: Uuid) -> Result<Tenant, RegistryError> {
        const SQL: &str = concat!(
            "SELECT ",
            tenant_cols!(),
            " FROM control_plane.tenants WHERE id = $1 AND deleted_at IS NULL"
        );
        let client = self.pool.get().await?;
        match client.query_opt(SQL, &[&id]).await? {
            Some(row) => tenant_from_row(&row).map(|t| self.present(t)),
            None => Err(RegistryError::NotFound(id.to_string())),
        }
    }

    /// Whether another live tenant stores the same secret reference (drover must neither
    /// overwrite nor remove a password someone else logs in with).
    pub async fn secret_ref_shared(
        &self,
        reference: &str,
        id: Option<Uuid>,
    ) -> Result<bool, RegistryError> {
        const SQL: &str = "SELECT EXISTS (SELECT 1 FROM control_plane.tenants \
             WHERE db_secret_ref = $1 AND deleted_at IS NULL AND id IS DISTINCT FROM $2) AS shared";
        let client = self.pool.get().await?;
        Ok(client
            .query_one(SQL, &[&reference, &id])
            .await?
            .try_get("shared")?)
    }

    /// Remembers that provisioning wrote a password behind `reference` for the tenant: the
    /// one secret deprovisioning may remove.
    pub async fn record_secret_written(
        &self,
        id: Uuid,
        reference: &str,
    ) -> Result<(), RegistryError> {
        const SQL: &str = "UPDATE control_plane.tenants SET secret_written_ref = $2 WHERE id = $1";
        let client = self.pool.get().await?;
        client.execute(SQL, &[&id, &reference]).await?;
        Ok(())
    }

    /// The reference provisioning wrote a password behind for the tenant, if any.
    pub async fn secret_written_ref(&self, id: Uuid) -> Result<Option<String>, RegistryError> {
        const SQL: &str = "SELECT secret_written_ref FROM control_plane.tenants WHERE id = $1";
        let client = self.pool.get().await?;
        Ok(match client.query_opt(SQL, &[&id]).await? {
            Some(row) => row.try_get("secret_written_ref")?,
            None => None,
        })
    }

    /// Whether the tenant was created with `provision: true` (drover made its role,
    /// database and password).
    pub async fn provisioned_by_drover(&self, id: Uuid) -> Result<bool, RegistryError> {
        let client = self.pool.get().await?;
        created_for_provisioning(&**client, id).await
    }

    /// Live tenants per provisioning server (servers without tenants are absent).
    pub async fn server_loads(&self) -> Result<BTreeMap<String, i64>, RegistryError> {
        let client = self.pool.get().await?;
        loads(&**client).await
    }

    /// Creates a tenant in `provisioning` on the server `place` picks from the live
    /// tenants per server; `place` returns the request with `server` (and whatever comes
    /// from the server) filled in. Counting and inserting happen under one lock, so
    /// `max_tenants` holds with any number of replicas creating at once.
    pub async fn create_placed<E: From<RegistryError>>(
        &self,
        actor: &Actor,
        place: impl FnOnce(&BTreeMap<String, i64>) -> Result<NewTenant, E>,
    ) -> Result<Tenant, E> {
        let mut client = self.pool.get().await.map_err(RegistryError::from)?;
        let tx = client.transaction().await.map_err(RegistryError::from)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PLACEMENT_LOCK])
            .await
            .map_err(RegistryError::from)?;
        let placed = place(&loads(&*tx).await?)?;
        let mut placed = placed;
        placed.fill_display_name();
        let slug = placed.validate()?;
        self.check_scope(&placed.db_secret_ref)?;
        self.check_reserved(&*tx, &slug).await?;
        let tenant = insert_row(&*tx, &placed, &slug, TenantStatus::Provisioning, actor).await?;
        tx.commit().await.map_err(RegistryError::from)?;
        tracing::info!(actor = actor.as_str(), server = ?tenant.server, "tenant created");
        Ok(self.present(tenant))
    }

    /// Writes the `provisioning_failed` event of failed attempt number `schedule.attempts`
    /// and keeps the failure on the tenant (`provisioning_error`) with its retry schedule,
    /// in one transaction.
    pub async fn record_provisioning_error(
        &self,
        tenant_id: Uuid,
        actor: &Actor,
        payload: Value,
        error: &ProvisioningError,
        schedule: RetrySchedule,
    ) -> Result<(), RegistryError> {
        const SQL: &str = "UPDATE control_plane.tenants SET provisioning_error = $2, \
             provision_attempts = $3, \
             provision_retry_at = now() + make_interval(secs => $4::float8) WHERE id = $1";
        let stored = serde_json::to_value(error)
            .map_err(|e| RegistryError::Db(crate::db::DbError::Internal(e.to_string())))?;
        let attempts = i32::try_from(schedule.attempts).unwrap_or(i32::MAX);
        let delay = schedule.retry_in.map(|d| d.as_secs_f64());
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(SQL, &[&tenant_id, &stored, &attempts, &delay])
            .await?;
        record_event(&*tx, tenant_id, "provisioning_failed", actor, payload).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Tenants still `provisioning` whose next retry was due `late_by` ago or earlier (the
    /// replica that scheduled it would have started it by then), with the attempts made,
    /// longest overdue first, at most `limit`.
    pub async fn due_provisioning_retries(
        &self,
        late_by: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<DueRetry>, RegistryError> {
        const SQL: &str = "SELECT id, provision_attempts FROM control_plane.tenants \
             WHERE provision_retry_at <= now() - make_interval(secs => $1::float8) \
             AND status = 'provisioning' AND deleted_at IS NULL \
             ORDER BY provision_retry_at LIMIT $2";
        let client = self.pool.get().await?;
        let rows = client.query(SQL, &[&late_by.as_secs_f64(), &limit]).await?;
        rows.iter()
            .map(|r| {
                let attempts: i32 = r.try_get("provision_attempts")?;
                Ok(DueRetry {
                    tenant_id: r.try_get("id")?,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Writes an `error` event; the tenant itself is left as it is.
    pub async fn record_error(
        &self,
        tenant_id: Uuid,
        actor: &Actor,
        payload: Value,
    ) -> Result<(), RegistryError> {
        let client = self.pool.get().await?;
        record_event(&**client, tenant_id, "error", actor, payload).await
    }

    /// provisioning → active with the schema version the new database reached, writing
    /// `migrated` (so the health report's version check holds) and `provisioned`.
    /// `reached` is what the first migration run did: versions before and after, and the
    /// ones it applied.
    pub async fn finish_provisioning(
        &self,
        id: Uuid,
        reached: Reached<'_>,
        provisioned: Value,
        actor: &Actor,
    ) -> Result<Tenant, RegistryError> {
        const SQL: &str = concat!(
            "UPDATE control_plane.tenants SET status = 'active', schema_version = $2, \
             provisioned_at = now(), provisioning_error = NULL, provision_attempts = 0, \
             provision_retry_at = NULL WHERE id = $1 RETURNING ",
            tenant_cols!()
        );
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let before = Self::lock_by_id(&*tx, id).await?;
        if before.status != TenantStatus::Provisioning {
            return Err(RegistryError::IllegalTransition {
                slug: before.slug,
                verb: "activate",
                from: before.status.to_string(),
            });
        }
        let row = tx.query_one(SQL, &[&id, &reached.to]).await?;
        let tenant = tenant_from_row(&row)?;
        if reached.to.is_some() {
            let migrated = json!({
                "from": reached.from, "to": reached.to, "wave_id": null,
                "duration_ms": provisioned["duration_ms"], "applied": reached.applied,
            });
            record_event(&*tx, id, "migrated", actor, migrated).await?;
        }
        record_event(&*tx, id, "provisioned", actor, provisioned).await?;
        tx.commit().await?;
        Ok(self.present(tenant))
    }

    /// → deleting, before the database is dropped. A tenant already `deleting` (an earlier
    /// attempt stopped half-way) is returned as it is, so the drop can be retried.
    pub async fn begin_delete(
        &self,
        slug: &str,
        extra: Value,
        actor: &Actor,
    ) -> Result<Tenant, RegistryError> {
        const SQL: &str = concat!(
            "UPDATE control_plane.tenants SET status = 'deleting' WHERE id = $1 RETURNING ",
            tenant_cols!()
        );
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let before = Self::lock_live(&*tx, slug).await?;
        if before.status == TenantStatus::Deleting {
            return Ok(self.present(before));
        }
        if Transition::StartDelete.apply(before.status).is_none() {
            return Err(RegistryError::IllegalTransition {
                slug: before.slug,
                verb: "delete",
                from: before.status.to_string(),
            });
        }
        let row = tx.query_one(SQL, &[&before.id]).await?;
        let tenant = tenant_from_row(&row)?;
        let mut payload = json!({ "from": before.status, "to": "deleting" });
        merge(&mut payload, extra);
        record_event(&*tx, before.id, "deleting", actor, payload).await?;
        tx.commit().await?;
        Ok(self.present(tenant))
    }

    /// deleting → deleted (`deleted_at` set, slug and db_name free again).
    pub async fn finish_delete(
        &self,
        id: Uuid,
        extra: Value,
        actor: &Actor,
    ) -> Result<Tenant, RegistryError> {
        const SQL: &str = concat!(
            "UPDATE control_plane.tenants SET status = 'deleted', deleted_at = now() \
             WHERE id = $1 RETURNING ",
            tenant_cols!()
        );
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let before = Self::lock_by_id(&*tx, id).await?;
        if before.status != TenantStatus::Deleting {
            return Err(RegistryError::IllegalTransition {
                slug: before.slug,
                verb: "finish deleting",
                from: before.status.to_string(),
            });
        }
        let row = tx.query_one(SQL, &[&id]).await?;
        let tenant = tenant_from_row(&row)?;
        let mut payload = json!({ "from": "deleting", "to": "deleted" });
        merge(&mut payload, extra);
        record_event(&*tx, id, "deleted", actor, payload).await?;
        tx.commit().await?;
        Ok(self.present(tenant))
    }
}

fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, extra) {
        a.extend(b);
    }
}
