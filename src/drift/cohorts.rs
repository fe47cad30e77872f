//! The fleet grouped by what its schemas are: cohorts of tenants sharing a version and a
//! root fingerprint, each compared with the expected schema of its version, and the
//! per-tenant answer. Differences are computed from the stored per-object hashes, so
//! explaining a cohort never reads a tenant.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::store::{self, Changed};
use super::{DriftError, SchemaObject};
use crate::registry::{record_event, Actor};

/// How many slugs a cohort lists.
pub const COHORT_SLUGS: usize = 20;

/// How many differences an event's payload names (the API names them all).
const EVENT_DIFFERENCES: usize = 10;

/// What the expected schema of a version was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reference {
    /// The migration set replayed on a scratch database (`drift_scratch_url`).
    Replay,
    /// No replay: the schema most tenants at that version share.
    Majority,
}

impl Reference {
    fn of(replay: bool) -> Reference {
        if replay {
            Reference::Replay
        } else {
            Reference::Majority
        }
    }
}

/// How an object differs from the expected schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DifferenceKind {
    /// The expected schema has it; the tenant does not.
    Missing,
    /// The tenant has it; the expected schema does not.
    Extra,
    /// Both have it, defined differently.
    Changed,
}

/// One object that differs from the expected schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Difference {
    /// `kind schema.name` (`column public.orders.legacy_id`, `index public.orders_customer_idx`).
    pub object: String,
    pub kind: DifferenceKind,
    /// The definition (shortened): the expected one when missing, the tenant's when
    /// extra, both when changed.
    pub detail: String,
}

/// The objects of `actual` that differ from `expected`, in key order.
pub fn differences(
    actual: &BTreeMap<String, SchemaObject>,
    expected: &BTreeMap<String, SchemaObject>,
) -> Vec<Difference> {
    let mut out = Vec::new();
    for (key, want) in expected {
        match actual.get(key) {
            None => out.push(Difference {
                object: key.clone(),
                kind: DifferenceKind::Missing,
                detail: want.detail.clone(),
            }),
            Some(got) if got.hash != want.hash => out.push(Difference {
                object: key.clone(),
                kind: DifferenceKind::Changed,
                detail: format!("is: {}; expected: {}", got.detail, want.detail),
            }),
            Some(_) => {}
        }
    }
    for (key, got) in actual {
        if !expected.contains_key(key) {
            out.push(Difference {
                object: key.clone(),
                kind: DifferenceKind::Extra,
                detail: got.detail.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.object.cmp(&b.object));
    out
}

/// Tenants sharing a version and a schema.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cohort {
    /// Highest applied migration (null: no history).
    #[schema(required)]
    pub version: Option<i32>,
    /// Root fingerprint (SHA-256, hex).
    pub fingerprint: String,
    /// The schema is the expected one for this version.
    pub expected: bool,
    /// What the expected schema was taken from.
    pub reference: Reference,
    pub tenants: i64,
    /// The first 20 slugs, alphabetically.
    pub slugs: Vec<String>,
    /// Against the expected schema of this version (empty when `expected`).
    pub differences: Vec<Difference>,
}

/// `GET /v1/drift`: the fleet's schema drift.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DriftReport {
    /// The newest fingerprint (null: none taken yet).
    #[schema(required)]
    pub scanned_at: Option<DateTime<Utc>>,
    /// `replay` when every version's expected schema comes from a replay, else `majority`.
    pub reference: Reference,
    /// Newest version first; within a version the largest cohort first.
    pub cohorts: Vec<Cohort>,
}

/// `GET /v1/tenants/{slug}/drift`: one tenant's schema drift.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantDrift {
    /// Highest applied migration when the fingerprint was taken (null: no history).
    #[schema(required)]
    pub version: Option<i32>,
    /// Root fingerprint (SHA-256, hex).
    pub fingerprint: String,
    /// The expected schema's root fingerprint at that version.
    #[schema(required)]
    pub expected_fingerprint: Option<String>,
    pub reference: Reference,
    /// The schema differs from the expected one of its version.
    pub drifted: bool,
    pub differences: Vec<Difference>,
    pub scanned_at: DateTime<Utc>,
}

/// Stored schemas by fingerprint, read once each.
#[derive(Default)]
struct Schemas(BTreeMap<String, BTreeMap<String, SchemaObject>>);

impl Schemas {
    async fn get(
        &mut self,
        client: &impl tokio_postgres::GenericClient,
        fingerprint: &str,
    ) -> Result<&BTreeMap<String, SchemaObject>, DriftError> {
        if !self.0.contains_key(fingerprint) {
            let objects = store::objects(client, fingerprint).await?;
            self.0.insert(fingerprint.to_string(), objects);
        }
        Ok(&self.0[fingerprint])
    }

    async fn differences(
        &mut self,
        client: &impl tokio_postgres::GenericClient,
        actual: &str,
        expected: &str,
    ) -> Result<Vec<Difference>, DriftError> {
        if actual == expected {
            return Ok(Vec::new());
        }
        let want = self.get(client, expected).await?.clone();
        let got = self.get(client, actual).await?;
        Ok(differences(got, &want))
    }
}

/// The fleet's cohorts with their differences.
pub async fn report(pool: &Pool) -> Result<DriftReport, DriftError> {
    let client = pool.get().await.map_err(|e| DriftError::Db(e.into()))?;
    let rows = store::cohorts(&**client).await?;
    let mut schemas = Schemas::default();
    let mut cohorts = Vec::with_capacity(rows.len());
    for r in &rows {
        cohorts.push(Cohort {
            version: r.version,
            expected: r.fingerprint == r.expected,
            reference: Reference::of(r.replay),
            tenants: r.tenants,
            slugs: r.slugs.iter().take(COHORT_SLUGS).cloned().collect(),
            differences: schemas
                .differences(&**client, &r.fingerprint, &r.expected)
                .await?,
            fingerprint: r.fingerprint.clone(),
        });
    }
    Ok(DriftReport {
        scanned_at: rows.iter().map(|r| r.scanned_at).max(),
        reference: Reference::of(!rows.is_empty() && rows.iter().all(|r| r.replay)),
        cohorts,
    })
}

/// One tenant's drift; None before its first fingerprint.
pub async fn tenant(pool: &Pool, tenant_id: Uuid) -> Result<Option<TenantDrift>, DriftError> {
    let client = pool.get().await.map_err(|e| DriftError::Db(e.into()))?;
    let Some(r) = store::tenant(&**client, tenant_id).await? else {
        return Ok(None);
    };
    let expected = r.expected.clone().unwrap_or_else(|| r.fingerprint.clone());
    let differences = Schemas::default()
        .differences(&**client, &r.fingerprint, &expected)
        .await?;
    Ok(Some(TenantDrift {
        drifted: r.fingerprint != expected,
        version: r.version,
        fingerprint: r.fingerprint,
        expected_fingerprint: r.expected,
        reference: Reference::of(r.replay),
        differences,
        scanned_at: r.scanned_at,
    }))
}

/// Records fingerprints taken after migrations and, in the caller's transaction (a wave's
/// completion batch), each tenant's drift answer and the event when that answer changed.
pub async fn record_taken(
    client: &impl tokio_postgres::GenericClient,
    taken: &[(Uuid, Option<i32>, &super::Fingerprint)],
) -> Result<(), DriftError> {
    store::save_tenants(client, taken).await?;
    let ids: Vec<Uuid> = taken.iter().map(|t| t.0).collect();
    signal(client, Some(&ids)).await?;
    Ok(())
}

/// Records a tenant's fingerprint without answering it (a scan answers every tenant
/// once at its end).
pub async fn save(
    pool: &Pool,
    tenant_id: Uuid,
    version: Option<i32>,
    fp: &super::Fingerprint,
) -> Result<(), DriftError> {
    let client = pool.get().await.map_err(|e| DriftError::Db(e.into()))?;
    store::save_tenant(&**client, tenant_id, version, fp).await
}

/// Re-answers every tenant against the current reference (after a scan or a replay, the
/// majority or the replay may have moved) and records the events of those that changed.
pub async fn reconcile(pool: &Pool) -> Result<usize, DriftError> {
    let mut client = pool.get().await.map_err(|e| DriftError::Db(e.into()))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| DriftError::Db(e.into()))?;
    let n = signal(&*tx, None).await?;
    tx.commit().await.map_err(|e| DriftError::Db(e.into()))?;
    Ok(n)
}

async fn signal(
    client: &impl tokio_postgres::GenericClient,
    only: Option<&[Uuid]>,
) -> Result<usize, DriftError> {
    let changed = store::reconcile(client, only).await?;
    let actor = Actor::new("drover").unwrap_or_else(|_| unreachable!("static actor is valid"));
    let mut schemas = Schemas::default();
    for c in &changed {
        let (event_type, payload) = event(client, &mut schemas, c).await?;
        record_event(client, c.tenant_id, event_type, &actor, payload).await?;
    }
    Ok(changed.len())
}

async fn event(
    client: &impl tokio_postgres::GenericClient,
    schemas: &mut Schemas,
    c: &Changed,
) -> Result<(&'static str, serde_json::Value), DriftError> {
    if !c.drifted {
        return Ok((
            "drift_resolved",
            json!({"version": c.version, "fingerprint": c.fingerprint}),
        ));
    }
    let diffs = schemas
        .differences(client, &c.fingerprint, &c.expected)
        .await?;
    let named: Vec<_> = diffs
        .iter()
        .take(EVENT_DIFFERENCES)
        .map(|d| json!({"object": d.object, "kind": d.kind}))
        .collect();
    Ok((
        "drift_detected",
        json!({
            "version": c.version,
            "fingerprint": c.fingerprint,
            "expected_fingerprint": c.expected,
            "reference": Reference::of(c.replay),
            "differences": named,
            "more": diffs.len().saturating_sub(EVENT_DIFFERENCES),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(hash: &str, detail: &str) -> SchemaObject {
        SchemaObject {
            hash: hash.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn differences_name_missing_extra_and_changed_objects_in_key_order() {
        let expected = BTreeMap::from([
            ("column public.t.a".to_string(), obj("1", "int")),
            ("index public.t_a_idx".to_string(), obj("2", "CREATE INDEX")),
        ]);
        let actual = BTreeMap::from([
            ("column public.t.a".to_string(), obj("9", "bigint")),
            ("column public.t.b".to_string(), obj("3", "text")),
        ]);
        let d = differences(&actual, &expected);
        let got: Vec<_> = d.iter().map(|d| (d.object.as_str(), d.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("column public.t.a", DifferenceKind::Changed),
                ("column public.t.b", DifferenceKind::Extra),
                ("index public.t_a_idx", DifferenceKind::Missing),
            ]
        );
        assert_eq!(d[0].detail, "is: bigint; expected: int");
    }

    #[test]
    fn a_schema_equal_to_the_expected_one_has_no_differences() {
        let m = BTreeMap::from([("table public.t".to_string(), obj("1", "table"))]);
        assert!(differences(&m, &m).is_empty());
    }
}
