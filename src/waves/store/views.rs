//! What the wave API shows: a wave's progress by phase, its failures and targets.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::waves::analysis::AnalysisView;
use crate::waves::dry_run::DryRunReport;
use crate::waves::state::{Counts, WaveState};

/// The schema of [`TargetView::state`] (stored as text).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum TargetState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

/// Progress of one phase.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Phase)]
pub struct PhaseView {
    pub phase: i32,
    /// `canary` or `batch N`.
    pub name: String,
    pub total: i64,
    #[serde(flatten)]
    pub counts: Counts,
}

/// A failed tenant.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Failure)]
pub struct FailureView {
    pub slug: String,
    #[schema(required)]
    pub kind: Option<String>,
    #[schema(required)]
    pub error: Option<String>,
}

/// Everything `GET /v1/waves/{id}` shows.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Wave)]
pub struct WaveView {
    pub id: Uuid,
    pub state: WaveState,
    pub target_version: i32,
    pub current_phase: i32,
    pub phase_count: i32,
    pub counts: Counts,
    pub phases: Vec<PhaseView>,
    pub failures: Vec<FailureView>,
    #[schema(required)]
    pub halt_reason: Option<String>,
    #[schema(required)]
    pub soak_until: Option<DateTime<Utc>>,
    /// Rough seconds left, from the mean tenant duration so far and the concurrency.
    #[schema(required)]
    pub eta_seconds: Option<i64>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    #[schema(required)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub finished_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub plan: serde_json::Value,
    /// A dry run: nothing is written to tenants.
    #[serde(default)]
    #[schema(required)]
    pub dry_run: bool,
    /// The dry-run wave whose failed tenants this wave skips.
    #[serde(default)]
    #[schema(required)]
    pub exclude_failed_of: Option<Uuid>,
    /// Who ended the soak early, and when.
    #[serde(default)]
    #[schema(required)]
    pub promoted_by: Option<String>,
    #[serde(default)]
    #[schema(required)]
    pub promoted_at: Option<DateTime<Utc>>,
    /// Skipped tenants with the reason (quarantined, status changed, aborted), first 100.
    #[serde(default)]
    #[schema(required)]
    pub skipped: Vec<FailureView>,
    /// Dry runs: outcomes, failures grouped by error.
    #[serde(default)]
    #[schema(required)]
    pub dry_run_report: Option<DryRunReport>,
    /// Canary analysis: the checks and every measurement.
    #[serde(default)]
    #[schema(required)]
    pub analysis: Option<AnalysisView>,
    /// Every database host with its adaptive concurrency limit.
    #[serde(default)]
    #[schema(required)]
    pub hosts: Vec<crate::waves::host_limits::HostLimit>,
}

/// A target row for `GET /v1/waves/{id}/targets`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Target)]
pub struct TargetView {
    pub slug: String,
    pub phase: i32,
    #[schema(value_type = TargetState)]
    pub state: String,
    pub attempts: i32,
    #[schema(required)]
    pub from_version: Option<i32>,
    #[schema(required)]
    pub to_version: Option<i32>,
    #[schema(required)]
    pub error_kind: Option<String>,
    /// The server's words (message and DETAIL) for operators and admins; for viewers the
    /// migration and SQLSTATE only, as events carry it.
    #[schema(required)]
    pub error: Option<String>,
    #[schema(required)]
    pub duration_ms: Option<i64>,
    #[schema(required)]
    pub lease_owner: Option<String>,
    /// Dry runs: code, message, detail and file of a failure, or the files not run;
    /// quarantined targets: the dry run that found them.
    #[serde(default)]
    #[schema(value_type = Option<Object>, required)]
    pub detail: Option<serde_json::Value>,
}
