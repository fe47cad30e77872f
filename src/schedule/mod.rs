//! Schedules: when the daemon starts a wave on its own, and which replica does it.
//!
//! [`cron`] holds the schedule expression ([`CronSpec`]): standard 5-field crontab syntax
//! (plus seconds and year forms and `@daily`-style macros), parsed into the `cron` crate's
//! form, and the next fire times computed in the schedule's IANA timezone with a documented
//! daylight-saving policy (a nonexistent local time is skipped, an ambiguous one fires once).
//! [`leader`] elects one replica through a lease row (task `leader`, every ttl/3);
//! [`scheduler`] fires due schedules on the leader (task `scheduler`, every second), exactly
//! once per tick; [`store`] owns the schedule SQL (`schedules`, `schedule_fires` writes and
//! the `/metrics` next fires) and [`fires`] the reads of the fire history.

pub mod cron;
pub mod fires;
pub mod leader;
pub mod scheduler;
pub mod store;

pub use self::cron::{parse_timezone, CronError, CronSpec};
pub use leader::Leadership;
pub use store::{NewSchedule, ScheduleError, SchedulePatch, ScheduleStore, ScheduleView};
