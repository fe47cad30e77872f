//! Canary analysis: checks evaluated while a wave soaks, deciding on evidence whether its
//! batches may start.
//!
//! ```text
//!  canary ─► soaking ──(soak over, every check ran and none over a limit)──► rolling
//!               │  every interval_seconds, per check:
//!               │    sql:        query on each canary DB (read-only tx, statement timeout)
//!               │                one row whose first column is true → pass, any other
//!               │                answer → fail, no answer (error, timeout) → inconclusive,
//!               │                kept as its SQLSTATE only (the message may quote rows)
//!               │    prometheus: instant query → scalar → `result <op> number` → pass/fail;
//!               │                no data, several series, NaN, error → inconclusive
//!               ├─ failures > failure_limit ─────────► halted  (check, values, tenant)
//!               ├─ inconclusives > inconclusive_limit ► paused  (resume restarts the soak)
//!               └─ POST /v1/waves/{id}/promote ──────► rolling (rest of the soak skipped)
//! ```
//!
//! Evaluation is claimed work like tenant migrations: every replica's `wave-worker` tick
//! (250 ms) claims due checks of soaking waves with `FOR UPDATE SKIP LOCKED` and a lease
//! ([`run::claim_due`]), commits, evaluates with no control transaction open, then records
//! each measurement ([`run::record`]). The decision is taken by whichever replica advances
//! the wave, under the wave's row lock ([`run::gate`]). Every measurement is stored, shown
//! by `GET /v1/waves/{id}` and counted in `drover_analysis_evaluations_total`.

pub mod condition;
pub mod guard;
pub mod prometheus;
pub mod run;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::WaveError;
pub use condition::Condition;

/// The kind of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A query on every canary tenant database.
    Sql,
    /// A PromQL instant query against `prometheus_url`.
    Prometheus,
}

impl CheckKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Sql => "sql",
            CheckKind::Prometheus => "prometheus",
        }
    }
}

/// One entry of `analysis` in `POST /v1/waves` (and in a schedule's template).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AnalysisCheck)]
pub struct CheckSpec {
    /// Unique within the wave: 1-63 of `a-z`, `0-9`, `_`, `-`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub name: String,
    /// `sql` or `prometheus`.
    #[serde(rename = "type")]
    pub kind: CheckKind,
    /// SQL (one statement) or PromQL.
    #[schema(
        min_length = 1,
        max_length = 10000,
        pattern = "^[^\\x00]*\\S[^\\x00]*$"
    )]
    pub query: String,
    /// Prometheus checks only: `result <op> <number>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^\\s*result\\s*(<=|>=|==|!=|<|>)\\s*[-+]?[0-9.]+([eE][-+]?[0-9]+)?\\s*$")]
    pub success_condition: Option<String>,
    /// Seconds between evaluations (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 86400)]
    pub interval_seconds: Option<i32>,
    /// Failed measurements tolerated during the soak (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 10000)]
    pub failure_limit: Option<i32>,
    /// Inconclusive measurements tolerated during the soak (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 10000)]
    pub inconclusive_limit: Option<i32>,
    /// Statement timeout of a sql check, request timeout of a prometheus check (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 100, maximum = 300000)]
    pub timeout_ms: Option<i32>,
}

/// A validated check, every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: CheckKind,
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    pub interval_seconds: i32,
    pub failure_limit: i32,
    pub inconclusive_limit: i32,
    pub timeout_ms: i32,
}

impl Check {
    /// The parsed success condition (prometheus checks; validated at creation).
    pub fn condition(&self) -> Option<Condition> {
        self.success_condition.as_deref()?.parse().ok()
    }
}

/// Most checks one wave may carry.
pub const MAX_CHECKS: usize = 20;
/// Longest query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 10_000;

fn invalid(message: String) -> WaveError {
    WaveError::Invalid {
        field: "analysis",
        message,
    }
}

fn bounded(
    at: &str,
    field: &str,
    v: Option<i32>,
    default: i32,
    (min, max): (i32, i32),
) -> Result<i32, WaveError> {
    let v = v.unwrap_or(default);
    if !(min..=max).contains(&v) {
        return Err(invalid(format!(
            "{at}: {field} must be between {min} and {max}"
        )));
    }
    Ok(v)
}

/// Checks every entry and fills in the defaults.
pub fn validate(specs: &[CheckSpec]) -> Result<Vec<Check>, WaveError> {
    if specs.len() > MAX_CHECKS {
        return Err(invalid(format!("at most {MAX_CHECKS} checks per wave")));
    }
    let mut out: Vec<Check> = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let at = format!("check {} ({:?})", i + 1, s.name);
        let name_ok = (1..=63).contains(&s.name.len())
            && s.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            && s.name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if !name_ok {
            return Err(invalid(format!(
                "{at}: name must be 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit"
            )));
        }
        if out.iter().any(|c| c.name == s.name) {
            return Err(invalid(format!("{at}: another check has this name")));
        }
        let query = s.query.trim();
        if query.is_empty() || query.len() > MAX_QUERY_BYTES || query.contains('\0') {
            return Err(invalid(format!(
                "{at}: query must be 1-{MAX_QUERY_BYTES} bytes without NUL characters"
            )));
        }
        let success_condition = match (s.kind, &s.success_condition) {
            (CheckKind::Prometheus, Some(c)) => {
                let parsed: Condition = c
                    .parse()
                    .map_err(|e| invalid(format!("{at}: success_condition: {e}")))?;
                Some(parsed.to_string())
            }
            (CheckKind::Prometheus, None) => {
                return Err(invalid(format!(
                    "{at}: a prometheus check needs a success_condition such as `result < 0.01`"
                )))
            }
            (CheckKind::Sql, Some(_)) => {
                return Err(invalid(format!(
                    "{at}: a sql check has no success_condition: it passes when its query returns one row whose first column is true"
                )))
            }
            (CheckKind::Sql, None) => None,
        };
        out.push(Check {
            name: s.name.clone(),
            kind: s.kind,
            query: query.to_string(),
            success_condition,
            interval_seconds: bounded(
                &at,
                "interval_seconds",
                s.interval_seconds,
                30,
                (1, 86_400),
            )?,
            failure_limit: bounded(&at, "failure_limit", s.failure_limit, 0, (0, 10_000))?,
            inconclusive_limit: bounded(
                &at,
                "inconclusive_limit",
                s.inconclusive_limit,
                0,
                (0, 10_000),
            )?,
            timeout_ms: bounded(&at, "timeout_ms", s.timeout_ms, 5_000, (100, 300_000))?,
        });
    }
    // What a sql check's query may do, once every check is well-formed.
    for (i, c) in out.iter().enumerate() {
        if c.kind == CheckKind::Sql {
            if let Some(why) = guard::refuse(&c.query) {
                return Err(invalid(format!("check {} ({:?}): {why}", i + 1, c.name)));
            }
        }
    }
    Ok(out)
}

/// A check of a wave and its counters for the current soak.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AnalysisCheckView)]
pub struct CheckView {
    pub name: String,
    #[serde(rename = "type")]
    #[schema(value_type = CheckKind)]
    pub kind: String,
    pub query: String,
    #[schema(required)]
    pub success_condition: Option<String>,
    pub interval_seconds: i32,
    pub failure_limit: i32,
    pub inconclusive_limit: i32,
    /// Evaluations in the current soak.
    pub runs: i32,
    /// Failed measurements in the current soak.
    pub failures: i32,
    /// Inconclusive measurements in the current soak.
    pub inconclusives: i32,
    #[schema(required)]
    pub next_run_at: Option<DateTime<Utc>>,
}

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Evaluation)]
pub struct EvaluationView {
    pub at: DateTime<Utc>,
    pub check: String,
    /// The canary tenant (sql checks).
    #[schema(required)]
    pub tenant: Option<String>,
    /// What the query returned, as text.
    #[schema(required)]
    pub value: Option<String>,
    /// `pass`, `fail` or `inconclusive`.
    #[schema(value_type = Verdict)]
    pub verdict: String,
    /// Why a measurement was inconclusive.
    #[schema(required)]
    pub detail: Option<String>,
}

/// The analysis part of `GET /v1/waves/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Analysis)]
pub struct AnalysisView {
    pub checks: Vec<CheckView>,
    /// The most recent measurements, newest first (at most [`VIEW_EVALUATIONS`]).
    pub evaluations: Vec<EvaluationView>,
    /// All measurements stored for the wave.
    pub evaluations_total: i64,
}

/// Measurements shown in a wave view.
pub const VIEW_EVALUATIONS: i64 = 500;

/// The schema of [`EvaluationView::verdict`] (stored as text).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: CheckKind, cond: Option<&str>) -> CheckSpec {
        CheckSpec {
            name: "errors".into(),
            kind,
            query: "sum(rate(x[5m]))".into(),
            success_condition: cond.map(Into::into),
            interval_seconds: None,
            failure_limit: None,
            inconclusive_limit: None,
            timeout_ms: None,
        }
    }

    #[test]
    fn defaults_fill_in_and_conditions_are_normalized() {
        let checks = validate(&[spec(CheckKind::Prometheus, Some("result<0.01"))]).unwrap();

        assert_eq!(checks[0].interval_seconds, 30);
        assert_eq!(
            (checks[0].failure_limit, checks[0].inconclusive_limit),
            (0, 0)
        );
        assert_eq!(
            checks[0].success_condition.as_deref(),
            Some("result < 0.01")
        );
        assert!(checks[0].condition().unwrap().holds(0.0));
    }

    #[test]
    fn a_prometheus_check_needs_a_valid_condition_and_a_sql_check_has_none() {
        let missing = validate(&[spec(CheckKind::Prometheus, None)]).unwrap_err();
        let bad = validate(&[spec(CheckKind::Prometheus, Some("rate > 1"))]).unwrap_err();
        let sql = validate(&[spec(CheckKind::Sql, Some("result > 1"))]).unwrap_err();

        assert!(
            missing.to_string().contains("needs a success_condition"),
            "{missing}"
        );
        assert!(bad.to_string().contains("result <op> <number>"), "{bad}");
        assert!(sql.to_string().contains("first column is true"), "{sql}");
    }

    #[test]
    fn names_must_be_unique_and_plain() {
        let two = [spec(CheckKind::Sql, None), spec(CheckKind::Sql, None)];
        assert!(validate(&two)
            .unwrap_err()
            .to_string()
            .contains("another check"));
        let mut upper = spec(CheckKind::Sql, None);
        upper.name = "Errors".into();
        assert!(validate(&[upper]).is_err());
        let mut zero = spec(CheckKind::Sql, None);
        zero.interval_seconds = Some(0);
        assert!(validate(&[zero])
            .unwrap_err()
            .to_string()
            .contains("interval_seconds"));
    }
}
