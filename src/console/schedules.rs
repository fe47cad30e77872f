//! `/ui/schedules`: every schedule with its cron expression, timezone, whether it is
//! enabled, its next fire times in its own timezone (the schedule module's computation,
//! as `GET /v1/schedules` shows them) and its last fires with their outcome and wave.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use uuid::Uuid;

use super::layout::{self, Nav, Page};
use super::session::Session;
use super::ConsoleError;
use crate::schedule::{parse_timezone, ScheduleError, ScheduleView};
use crate::state::AppState;
use crate::waves::WaveState;

/// Fires listed per schedule, newest first.
const LAST_FIRES: i64 = 5;

/// What handling one tick did (a fire's `outcome`, as [`crate::schedule::fires`] reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Fired,
    SkippedOverlap,
    SkippedMissed,
    Failed,
}

impl FromStr for Outcome {
    type Err = ConsoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fired" => Ok(Outcome::Fired),
            "skipped_overlap" => Ok(Outcome::SkippedOverlap),
            "skipped_missed" => Ok(Outcome::SkippedMissed),
            "failed" => Ok(Outcome::Failed),
            other => Err(ConsoleError::Internal {
                message: format!("unknown schedule fire outcome {other:?}"),
                retryable: false,
            }),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Fired => "fired",
            Outcome::SkippedOverlap => "skipped: previous wave unfinished",
            Outcome::SkippedMissed => "skipped: missed",
            Outcome::Failed => "failed",
        })
    }
}

/// One handled tick, with the state of the wave it started.
struct Fire {
    tick: DateTime<Utc>,
    outcome: Outcome,
    wave_id: Option<Uuid>,
    wave_state: Option<WaveState>,
    detail: Option<String>,
}

impl From<ScheduleError> for ConsoleError {
    fn from(e: ScheduleError) -> Self {
        let r = e.is_retryable();
        ConsoleError::internal("the schedule store", &e, r)
    }
}

/// The newest fires of every schedule, by schedule name, with their waves' states.
async fn last_fires(s: &AppState) -> Result<HashMap<String, Vec<Fire>>, ConsoleError> {
    let records = s.schedules.last_fires(LAST_FIRES).await?;
    let ids: Vec<Uuid> = records.iter().filter_map(|f| f.wave_id).collect();
    let states = s.waves.states(&ids).await?;
    let mut out: HashMap<String, Vec<Fire>> = HashMap::new();
    for f in records {
        out.entry(f.schedule_name).or_default().push(Fire {
            tick: f.tick,
            outcome: f.outcome.parse()?,
            wave_id: f.wave_id,
            wave_state: f.wave_id.and_then(|id| states.get(&id).copied()),
            detail: f.detail,
        });
    }
    Ok(out)
}

/// `GET /ui/schedules`.
pub async fn page(State(s): State<AppState>, session: Session) -> Result<Response, ConsoleError> {
    let schedules = s.schedules.list().await?;
    let mut fires = last_fires(&s).await?;
    let body = html! {
        h1 { "Schedules" }
        @if schedules.is_empty() {
            p.muted { "No schedules. Create one with " code { "POST /v1/schedules" } " or " code { "drover schedules create" } "." }
        }
        @for sc in &schedules {
            (schedule(sc, fires.remove(&sc.name).unwrap_or_default()))
        }
    };
    Ok(Page::new(Nav::Schedules, "Schedules", body).render(&session))
}

fn schedule(sc: &ScheduleView, fires: Vec<Fire>) -> Markup {
    let heading = format!("schedule-{}", sc.name);
    html! {
        section.panel aria-labelledby=(heading) {
            h2 id=(heading) {
                (sc.name) " "
                (layout::badge(if sc.enabled { "enabled" } else { "paused" }))
            }
            dl.facts {
                dt { "Cron" } dd { code { (sc.cron) } }
                dt { "Timezone" } dd { (sc.timezone) }
                dt { "When a wave is unfinished" } dd { (if sc.on_overlap == "queue" { "queue the tick" } else { "skip the tick" }) }
                dt { "Next fires" } dd {
                    @if !sc.enabled {
                        span.muted { "none while paused; when enabled: " }
                    }
                    @if sc.next_fires.is_empty() {
                        span.muted { "none (the expression has no future times)" }
                    } @else {
                        ol.fires { @for t in &sc.next_fires { li { (local_time(t, &sc.timezone)) } } }
                    }
                }
            }
            h3 { "Last fires" }
            @if fires.is_empty() {
                p.muted { "Not fired yet." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Tick (" (sc.timezone) ")" }
                        th scope="col" { "Outcome" }
                        th scope="col" { "Wave" }
                        th scope="col" { "Detail" }
                    } }
                    tbody {
                        @for f in &fires {
                            tr {
                                td { (local_utc(&f.tick, &sc.timezone)) }
                                td { (layout::badge(&f.outcome.to_string())) }
                                td {
                                    @if let Some(id) = f.wave_id {
                                        a.mono href={"/ui/waves/" (id)} { (id.to_string()[..8]) }
                                        @if let Some(st) = f.wave_state { " " (layout::badge(st.as_str())) }
                                    } @else { "—" }
                                }
                                td { @if let Some(d) = &f.detail { (d) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// An RFC 3339 time the schedule module computed in `tz`, as the local wall-clock time
/// with the zone's abbreviation (`Mon 2026-03-30 02:00 CEST`); the instant is in `datetime`.
fn local_time(rfc3339: &str, tz: &str) -> Markup {
    match DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => local_utc(&t.with_timezone(&Utc), tz),
        Err(_) => html! { (rfc3339) },
    }
}

fn local_utc(t: &DateTime<Utc>, tz: &str) -> Markup {
    let shown = match parse_timezone(tz) {
        Ok(zone) => t
            .with_timezone(&zone)
            .format("%a %Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => t.format("%a %Y-%m-%d %H:%M UTC").to_string(),
    };
    html! { time datetime=(t.to_rfc3339()) { (shown) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fire_time_is_shown_in_the_schedules_zone_with_its_abbreviation() {
        let summer = local_time("2026-07-01T02:00:00+02:00", "Europe/Berlin").into_string();
        let winter =
            local_utc(&"2026-12-01T01:00:00Z".parse().unwrap(), "America/New_York").into_string();

        assert!(summer.contains("Wed 2026-07-01 02:00 CEST"), "{summer}");
        assert!(
            summer.contains("datetime=\"2026-07-01T00:00:00+00:00\""),
            "{summer}"
        );
        assert!(winter.contains("Mon 2026-11-30 20:00 EST"), "{winter}");
    }
}
