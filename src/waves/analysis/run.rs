//! Claiming, evaluating and recording analysis checks, and the soak gate.
//!
//! Claim → commit → evaluate → record, as for tenant migrations: a claim moves the check's
//! `next_run_at` one interval on and sets a lease (`running_until`); a replica that dies
//! mid-evaluation loses the lease and the check is evaluated again by whoever claims it
//! next. The gate ([`gate`]) runs inside the wave's row-locked transaction in
//! `WaveStore::advance`.

use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::future::join_all;
use serde_json::Value;
use tokio_postgres::Transaction;
use uuid::Uuid;

use super::prometheus::Inconclusive;
use super::prometheus::PrometheusClient;
use super::{AnalysisView, Check, CheckKind, CheckView, EvaluationView, VIEW_EVALUATIONS};
use crate::resolve::Connector;
use crate::waves::claim::TenantNow;
use crate::waves::WaveError;

/// A check this replica claimed, with the canary tenants a sql check runs on.
#[derive(Debug, Clone)]
pub struct Due {
    pub wave_id: Uuid,
    pub check: Check,
    /// (slug, tenant) of every canary of the wave (empty for prometheus checks).
    pub canaries: Vec<(String, TenantNow)>,
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub tenant: Option<String>,
    pub value: Option<String>,
    pub verdict: Verdict,
    pub detail: Option<String>,
}

/// The verdict of one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    /// The stored spelling (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// How long an evaluation may take before its claim lapses: the check's timeout plus a
/// connection timeout and a margin (sql checks run on every canary at once).
fn lease_secs() -> &'static str {
    "(c.spec->>'timeout_ms')::float8 / 1000 + 30"
}

/// Claims up to `max` due checks of soaking waves for `owner`.
pub async fn claim_due(pool: &Pool, owner: &str, max: i64) -> Result<Vec<Due>, WaveError> {
    // Due: never run in this soak, or next run inside the soak window, or the previous
    // evaluator's lease ran out. Evaluations stop once the soak's last one has happened.
    let claim = format!(
        "UPDATE control_plane.wave_checks c SET running_by = $1, \
            running_until = now() + make_interval(secs => {lease}), \
            next_run_at = now() + make_interval(secs => c.interval_seconds) \
         FROM (SELECT d.wave_id, d.name FROM control_plane.wave_checks d \
               JOIN control_plane.waves w ON w.id = d.wave_id \
               WHERE w.state = 'soaking' AND ( \
                   (d.running_until IS NULL AND d.next_run_at <= now() \
                    AND (d.runs = 0 OR d.next_run_at <= w.soak_until)) \
                   OR d.running_until <= now()) \
               ORDER BY d.next_run_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED) due \
         WHERE c.wave_id = due.wave_id AND c.name = due.name \
         RETURNING c.wave_id, c.name, c.kind, c.spec",
        lease = lease_secs()
    );
    const CANARIES: &str = concat!(
        "SELECT t.slug, ",
        crate::registry::tenant_now_cols!("n"),
        " FROM control_plane.wave_targets t JOIN ",
        crate::registry::tenant_table!("n"),
        " ON n.id = t.tenant_id \
         WHERE t.wave_id = $1 AND t.phase = 0 AND t.state = 'succeeded' ORDER BY t.slug"
    );
    let client = pool.get().await?;
    let rows = client.query(&claim, &[&owner, &max]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let wave_id: Uuid = r.try_get("wave_id")?;
        let spec: Value = r.try_get("spec")?;
        let Ok(check) = serde_json::from_value::<Check>(spec) else {
            let name: String = r.try_get("name")?;
            tracing::error!(wave = %wave_id, check = name, "stored analysis check does not parse; skipping it");
            continue;
        };
        let canaries = if check.kind == CheckKind::Sql {
            client
                .query(CANARIES, &[&wave_id])
                .await?
                .iter()
                .map(|t| Ok((t.try_get("slug")?, TenantNow::from_row(t)?)))
                .collect::<Result<_, tokio_postgres::Error>>()?
        } else {
            Vec::new()
        };
        out.push(Due {
            wave_id,
            check,
            canaries,
        });
    }
    Ok(out)
}

/// Evaluates a claimed check: every canary at once for sql (connected through
/// `connector`), one query for prometheus (`prometheus`: None without `prometheus_url`).
pub async fn evaluate(
    connector: &Connector,
    prometheus: Option<&PrometheusClient>,
    due: &Due,
) -> Vec<Measurement> {
    let check = &due.check;
    let timeout = Duration::from_millis(check.timeout_ms as u64);
    match check.kind {
        CheckKind::Prometheus => {
            let measured = match (prometheus, check.condition()) {
                (Some(p), Some(cond)) => p
                    .scalar(&check.query, timeout)
                    .await
                    .map(|v| (v, cond.holds(v))),
                (None, _) => Err(Inconclusive(
                    "this replica has no prometheus_url (DROVER_PROMETHEUS_URL) configured".into(),
                )),
                (Some(_), None) => Err(Inconclusive("the success_condition does not parse".into())),
            };
            vec![match measured {
                Ok((v, holds)) => Measurement {
                    tenant: None,
                    value: Some(v.to_string()),
                    verdict: if holds { Verdict::Pass } else { Verdict::Fail },
                    detail: None,
                },
                Err(why) => Measurement {
                    tenant: None,
                    value: None,
                    verdict: Verdict::Inconclusive,
                    detail: Some(why.0),
                },
            }]
        }
        CheckKind::Sql if due.canaries.is_empty() => vec![Measurement {
            tenant: None,
            value: None,
            verdict: Verdict::Inconclusive,
            detail: Some("the wave has no succeeded canary tenant to run the query on".into()),
        }],
        CheckKind::Sql => {
            join_all(due.canaries.iter().map(|(slug, tenant)| async move {
                let (value, verdict, detail) =
                    match sql_on_tenant(connector, tenant, check, timeout).await {
                        Ok((value, true)) => (Some(value), Verdict::Pass, None),
                        Ok((value, false)) => (Some(value), Verdict::Fail, None),
                        Err(why) => (None, Verdict::Inconclusive, Some(why)),
                    };
                Measurement {
                    tenant: Some(slug.clone()),
                    value,
                    verdict,
                    detail,
                }
            }))
            .await
        }
    }
}

/// Why a tenant could not be asked (no migration version: none was running). A server
/// error is kept as its SQLSTATE only, like a failed query.
fn unreachable_tenant(e: crate::migrate::MigrateError) -> String {
    match e {
        crate::migrate::MigrateError::Sql { code, .. } => crate::migrate::sqlstate::describe(&code),
        other => other.to_string(),
    }
}

/// Why a query got no answer, as it may be stored and shown to every viewer and sent on
/// in a `paused` reason: the SQLSTATE and its condition name (`22P02
/// invalid_text_representation`), never the message or DETAIL, which quote the very data
/// the check read (`invalid input syntax for type integer: "ann@example.com,…"`).
fn no_answer(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => crate::migrate::sqlstate::describe(db.code().code()),
        None => crate::db::describe(&e),
    }
}

/// Runs a sql check's query on one tenant in a read-only transaction. Ok((value, passed))
/// when the query ran; Err(why) when it could not (an inconclusive measurement).
async fn sql_on_tenant(
    connector: &Connector,
    tenant: &TenantNow,
    check: &Check,
    timeout: Duration,
) -> Result<(String, bool), String> {
    let limits = crate::migrate::RunLimits {
        lock_timeout: timeout,
        statement_timeout: timeout,
        lock_wait: Duration::ZERO,
        connect_timeout: Duration::from_secs(5),
    };
    // Read-only from the first packet: the session default, then an explicit read-only
    // transaction whose snapshot is taken before the check's query runs, so not even a
    // `SET TRANSACTION READ WRITE` as the query can lift it.
    let limits = &limits;
    let mut client = connector
        .open(&tenant.db, None, |conn| async move {
            crate::migrate::tenant::connect_with(
                &conn,
                limits,
                "-c default_transaction_read_only=on",
                "drover-analysis",
            )
            .await
        })
        .await
        .map_err(unreachable_tenant)?;
    let pg = no_answer;
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(pg)?;
    tx.batch_execute("SELECT 1").await.map_err(pg)?;
    // Extended protocol: exactly one statement, never a script.
    let rows = tx.query(check.query.as_str(), &[]).await.map_err(pg)?;
    let _ = tx.rollback().await;
    Ok(match rows.as_slice() {
        [] => ("no rows".into(), false),
        // By position on purpose: the operator's query names its one column as it likes.
        [row] => match row.try_get::<_, Option<bool>>(0) {
            Ok(Some(b)) => (b.to_string(), b),
            Ok(None) => ("null".into(), false),
            Err(_) if row.is_empty() => ("no columns".into(), false),
            Err(_) => (
                format!("a {} instead of a boolean", row.columns()[0].type_().name()),
                false,
            ),
        },
        many => (format!("{} rows", many.len()), false),
    })
}

/// Stores the measurements and updates the check's counters, in one transaction.
pub async fn record(
    pool: &Pool,
    owner: &str,
    due: &Due,
    measurements: &[Measurement],
) -> Result<(), WaveError> {
    const INSERT: &str = "INSERT INTO control_plane.wave_check_evaluations \
         (wave_id, check_name, tenant_slug, value, verdict, detail, evaluated_by) \
         SELECT $1, $2, m.t, m.v, m.r, m.d, $7 FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS m(t, v, r, d)";
    // Only the lease holder clears the lease; a late result from a replica whose lease ran
    // out still counts as evidence.
    const COUNT: &str =
        "UPDATE control_plane.wave_checks SET runs = runs + 1, failures = failures + $3, \
         inconclusives = inconclusives + $4, \
         running_until = CASE WHEN running_by = $5 THEN NULL ELSE running_until END, \
         running_by = CASE WHEN running_by = $5 THEN NULL ELSE running_by END \
         WHERE wave_id = $1 AND name = $2";
    let count = |v: Verdict| measurements.iter().filter(|m| m.verdict == v).count() as i32;
    let tenants: Vec<Option<&str>> = measurements.iter().map(|m| m.tenant.as_deref()).collect();
    let values: Vec<Option<&str>> = measurements.iter().map(|m| m.value.as_deref()).collect();
    let verdicts: Vec<&str> = measurements.iter().map(|m| m.verdict.as_str()).collect();
    let details: Vec<Option<&str>> = measurements.iter().map(|m| m.detail.as_deref()).collect();
    let name = due.check.name.as_str();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        INSERT,
        &[
            &due.wave_id,
            &name,
            &tenants,
            &values,
            &verdicts,
            &details,
            &owner,
        ],
    )
    .await?;
    tx.execute(
        COUNT,
        &[
            &due.wave_id,
            &name,
            &count(Verdict::Fail),
            &count(Verdict::Inconclusive),
            &owner,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Starts (or restarts) the analysis of a wave entering its soak: counters to zero, the
/// first evaluation one interval from now.
pub async fn start_soak(tx: &Transaction<'_>, wave_id: Uuid) -> Result<(), WaveError> {
    const SQL: &str = "UPDATE control_plane.wave_checks SET runs = 0, failures = 0, inconclusives = 0, \
         running_by = NULL, running_until = NULL, next_run_at = now() + make_interval(secs => interval_seconds) \
         WHERE wave_id = $1";
    tx.execute(SQL, &[&wave_id]).await?;
    Ok(())
}

pub use crate::waves::state::Gate;

/// Decides for a soaking wave (inside the wave's row-locked transaction). `soak_done`:
/// the soak time has passed.
pub async fn gate(tx: &Transaction<'_>, wave_id: Uuid, soak_done: bool) -> Result<Gate, WaveError> {
    const CHECKS: &str =
        "SELECT c.name, c.failures, c.failure_limit, c.inconclusives, c.inconclusive_limit, \
         c.runs > 0 AND c.running_until IS NULL AND c.next_run_at > w.soak_until AS finished \
         FROM control_plane.wave_checks c JOIN control_plane.waves w ON w.id = c.wave_id \
         WHERE c.wave_id = $1 ORDER BY c.name";
    const SEEN: &str =
        "SELECT coalesce(tenant_slug, '') AS tenant, coalesce(value, '') AS value, coalesce(detail, '') AS detail, \
         to_char(evaluated_at AT TIME ZONE 'UTC', 'HH24:MI:SS\"Z\"') AS at \
         FROM control_plane.wave_check_evaluations \
         WHERE wave_id = $1 AND check_name = $2 AND verdict = $3 ORDER BY id DESC LIMIT 5";
    let rows = tx.query(CHECKS, &[&wave_id]).await?;
    let mut all_finished = true;
    for r in &rows {
        let (name, failures, failure_limit): (String, i32, i32) = (
            r.try_get("name")?,
            r.try_get("failures")?,
            r.try_get("failure_limit")?,
        );
        let (inconclusives, inconclusive_limit, finished): (i32, i32, bool) = (
            r.try_get("inconclusives")?,
            r.try_get("inconclusive_limit")?,
            r.try_get("finished")?,
        );
        all_finished &= finished;
        if failures > failure_limit {
            let seen = tx.query(SEEN, &[&wave_id, &name, &"fail"]).await?;
            let values = seen
                .iter()
                .map(|s| {
                    let (tenant, value, at): (String, String, String) =
                        (s.try_get("tenant")?, s.try_get("value")?, s.try_get("at")?);
                    Ok(if tenant.is_empty() {
                        format!("{value} at {at}")
                    } else {
                        format!("{tenant}: {value} at {at}")
                    })
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
            return Ok(Gate::Halt(format!(
                "analysis check {name} failed {failures} time(s), failure_limit {failure_limit}: {}",
                values.join("; ")
            )));
        }
        if inconclusives > inconclusive_limit {
            let seen = tx.query(SEEN, &[&wave_id, &name, &"inconclusive"]).await?;
            let why = match seen.first() {
                None => String::new(),
                Some(s) => {
                    let (tenant, detail): (String, String) =
                        (s.try_get("tenant")?, s.try_get("detail")?);
                    if tenant.is_empty() {
                        detail
                    } else {
                        format!("{tenant}: {detail}")
                    }
                }
            };
            return Ok(Gate::Pause(format!(
                "analysis check {name} was inconclusive {inconclusives} time(s), inconclusive_limit {inconclusive_limit} \
                 (last: {why}); resume to soak again, promote to skip the soak, or abort"
            )));
        }
    }
    Ok(if soak_done && all_finished {
        Gate::Pass
    } else {
        Gate::Wait
    })
}

/// The analysis of a wave for its view; None when it has no checks.
pub async fn view(
    client: &impl tokio_postgres::GenericClient,
    wave_id: Uuid,
) -> Result<Option<AnalysisView>, WaveError> {
    const CHECKS: &str = "SELECT name, kind, spec, interval_seconds, failure_limit, inconclusive_limit, runs, \
         failures, inconclusives, next_run_at FROM control_plane.wave_checks WHERE wave_id = $1 ORDER BY name";
    const EVALUATIONS: &str =
        "SELECT evaluated_at, check_name, tenant_slug, value, verdict, detail \
         FROM control_plane.wave_check_evaluations WHERE wave_id = $1 ORDER BY id DESC LIMIT $2";
    const TOTAL: &str =
        "SELECT count(*) AS total FROM control_plane.wave_check_evaluations WHERE wave_id = $1";
    let rows = client.query(CHECKS, &[&wave_id]).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let checks = rows
        .iter()
        .map(|r| {
            let spec: Value = r.try_get("spec")?;
            Ok(CheckView {
                name: r.try_get("name")?,
                kind: r.try_get("kind")?,
                query: spec["query"].as_str().unwrap_or_default().to_string(),
                success_condition: spec["success_condition"].as_str().map(str::to_string),
                interval_seconds: r.try_get("interval_seconds")?,
                failure_limit: r.try_get("failure_limit")?,
                inconclusive_limit: r.try_get("inconclusive_limit")?,
                runs: r.try_get("runs")?,
                failures: r.try_get("failures")?,
                inconclusives: r.try_get("inconclusives")?,
                next_run_at: r.try_get("next_run_at")?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let evaluations = client
        .query(EVALUATIONS, &[&wave_id, &VIEW_EVALUATIONS])
        .await?
        .iter()
        .map(|r| {
            Ok(EvaluationView {
                at: r.try_get("evaluated_at")?,
                check: r.try_get("check_name")?,
                tenant: r.try_get("tenant_slug")?,
                value: r.try_get("value")?,
                verdict: r.try_get("verdict")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let evaluations_total: i64 = client
        .query_one(TOTAL, &[&wave_id])
        .await?
        .try_get("total")?;
    Ok(Some(AnalysisView {
        checks,
        evaluations,
        evaluations_total,
    }))
}

/// Stores a wave's checks at creation (inside the creating transaction).
pub async fn insert_checks(
    tx: &Transaction<'_>,
    wave_id: Uuid,
    checks: &[Check],
) -> Result<(), WaveError> {
    const SQL: &str =
        "INSERT INTO control_plane.wave_checks (wave_id, name, kind, spec, interval_seconds, \
         failure_limit, inconclusive_limit) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    for c in checks {
        let spec = serde_json::to_value(c).unwrap_or_default();
        tx.execute(
            SQL,
            &[
                &wave_id,
                &c.name,
                &c.kind.as_str(),
                &spec,
                &c.interval_seconds,
                &c.failure_limit,
                &c.inconclusive_limit,
            ],
        )
        .await?;
    }
    Ok(())
}

/// Deletes at most `batch` measurements taken more than `older_than` ago, oldest first
/// (the retention task's step); returns how many.
pub async fn prune_evaluations(
    client: &impl tokio_postgres::GenericClient,
    older_than: Duration,
    batch: i64,
) -> Result<u64, crate::db::DbError> {
    const SQL: &str = "DELETE FROM control_plane.wave_check_evaluations WHERE id IN \
         (SELECT id FROM control_plane.wave_check_evaluations \
          WHERE evaluated_at < now() - make_interval(secs => $1) ORDER BY evaluated_at LIMIT $2)";
    Ok(client
        .execute(SQL, &[&older_than.as_secs_f64(), &batch])
        .await?)
}
