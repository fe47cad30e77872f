//! The schedule as requests carry it (`POST` and `PATCH` bodies) and as it is shown.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::waves::WaveRequest;

/// Body of `POST /v1/schedules`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    #[schema(pattern = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    /// Crontab (5 fields, 0/7 = Sunday), 6/7 fields with seconds, or `@daily` etc.
    pub cron: String,
    /// IANA timezone; default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The `POST /v1/waves` body each tick uses.
    #[serde(default)]
    pub template: Option<WaveRequest>,
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `skip` (default) or `queue`: what a tick does while the previous wave is unfinished.
    #[serde(default)]
    #[schema(value_type = Option<Overlap>)]
    pub on_overlap: Option<String>,
    /// How late a missed tick may still fire (default 300 s).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub misfire_grace_seconds: Option<i32>,
}

/// Body of `PATCH /v1/schedules/{name}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<WaveRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Overlap>)]
    pub on_overlap: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub misfire_grace_seconds: Option<i32>,
}

/// A schedule as shown to people: the next five fire times in its own timezone.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Schedule)]
pub struct ScheduleView {
    pub name: String,
    pub cron: String,
    /// What the cron crate was given (day-of-week as names, seconds first).
    pub cron_translated: String,
    pub timezone: String,
    #[schema(value_type = Object)]
    pub template: serde_json::Value,
    pub enabled: bool,
    #[schema(value_type = Overlap)]
    pub on_overlap: String,
    pub misfire_grace_seconds: i32,
    #[schema(required)]
    pub next_fire_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub last_fire_at: Option<DateTime<Utc>>,
    #[schema(required)]
    pub last_wave_id: Option<Uuid>,
    /// The next five fire times, RFC 3339 in the schedule's timezone.
    #[schema(value_type = Vec<chrono::DateTime<chrono::Utc>>)]
    pub next_fires: Vec<String>,
}

/// The schema of `on_overlap` (stored and checked as text).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Overlap {
    Skip,
    Queue,
}
