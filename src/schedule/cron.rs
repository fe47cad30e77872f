//! Cron expressions that do not surprise.
//!
//! # Syntax
//!
//! drover accepts the standard crontab forms and hands the `cron` crate an equivalent
//! expression in its own syntax ([`CronSpec::translated`]):
//!
//! | form | fields |
//! | --- | --- |
//! | 5 fields | `minute hour day-of-month month day-of-week` (seconds are 0) |
//! | 6 fields | `second minute hour day-of-month month day-of-week` |
//! | 7 fields | `second minute hour day-of-month month day-of-week year` |
//! | macro | `@yearly` = `@annually`, `@monthly`, `@weekly` (Sunday 00:00), `@daily` = `@midnight`, `@hourly` |
//!
//! Every field takes `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a`
//! to the field's maximum), or a comma-separated list of these. Allowed values: second and
//! minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or `JAN`-`DEC`, day-of-week 0-7 or
//! `SUN`-`SAT`, year 1970-2100. Names are case-insensitive. `?` is accepted as "any" in
//! day-of-month and day-of-week. `@reboot` is rejected: schedules fire at times, not at
//! startup.
//!
//! **Day-of-week is always crontab's**, in every form (5, 6 and 7 fields): `0` and `7` are
//! Sunday, `1` is Monday, ..., `6` is Saturday, so `0 3 * * 1-5` is 03:00 Monday to Friday.
//! (The `cron` crate itself counts 1-7 from Sunday; drover rewrites the field to day names,
//! e.g. `1-5` becomes `MON,TUE,WED,THU,FRI` and `5-7` becomes `SUN,FRI,SAT`, so that
//! numbering never reaches the user.)
//!
//! **Day-of-month and day-of-week cannot both be restricted.** Classic crontab fires when
//! *either* matches, other implementations (including the `cron` crate) when *both* match;
//! rather than pick one silently, such an expression is rejected and the user is asked to set
//! one of the two to `*`. An expression whose day-of-month never occurs in its months (such
//! as `0 0 31 2 *`) is rejected too.
//!
//! # Timezones and daylight saving time
//!
//! Fire times are computed on the schedule's local wall clock (an IANA timezone, see
//! [`parse_timezone`]) and returned as UTC instants by [`CronSpec::next_after`]:
//!
//! - a local time that does not exist (the spring-forward gap) is **skipped**: there is no
//!   fire for it that day, and it is not moved to a later time;
//! - a local time that exists twice (the fall-back fold) fires **once**, at its first
//!   occurrence (the earlier UTC instant). A frequent schedule such as `*/15 * * * *`
//!   therefore pauses for the repeated hour instead of firing twice as often.
//!
//! Example, `30 2 * * *` in `Europe/Berlin`:
//!
//! ```text
//! 2026-03-28 02:30 +01:00   fires
//! 2026-03-29 02:30          does not exist (clocks jump 02:00 -> 03:00): no fire that day
//! 2026-03-30 02:30 +02:00   fires
//! ...
//! 2026-10-25 02:30 +02:00   fires (first of the two 02:30s)
//! 2026-10-25 02:30 +01:00   does not fire again
//! ```
//!
//! The `cron` crate, given the timezone directly, also skips gaps but yields *both*
//! occurrences of an ambiguous time; drover therefore walks the schedule over naive local
//! times and maps each to an instant itself.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A validated schedule expression, kept as the user wrote it plus the cron-crate form.
#[derive(Debug, Clone)]
pub struct CronSpec {
    original: String,
    translated: String,
    schedule: ::cron::Schedule,
}

/// Why a schedule expression or timezone was rejected. Messages name the offending field and
/// say what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression does not have 5, 6 or 7 fields and is not a macro.
    #[error(
        "expected 5 fields (minute hour day-of-month month day-of-week), 6 or 7 with seconds \
         (and year), or a macro like @daily; got {got}"
    )]
    FieldCount { got: usize },
    /// One field is malformed or out of range.
    #[error("{field} field {text:?}: {reason}")]
    Field {
        field: &'static str,
        text: String,
        reason: String,
    },
    /// `@something` that is not a supported macro.
    #[error(
        "unknown macro {0:?}: use @yearly, @annually, @monthly, @weekly, @daily, @midnight or \
         @hourly"
    )]
    UnknownMacro(String),
    /// `@reboot`.
    #[error(
        "@reboot is not supported: drover schedules fire at times of day, not when the daemon \
         starts; use a time such as @daily or \"0 3 * * *\""
    )]
    Reboot,
    /// Both day fields are restricted, which classic cron and the `cron` crate read differently.
    #[error(
        "day-of-month {dom:?} and day-of-week {dow:?} are both restricted: classic crontab fires \
         when either matches, other cron implementations only when both match; set one of \
         them to *"
    )]
    AmbiguousDays { dom: String, dow: String },
    /// The day-of-month never occurs in any of the selected months.
    #[error("day-of-month {dom:?} never occurs in month {month:?}: the schedule would never fire")]
    NeverFires { dom: String, month: String },
    /// The `cron` crate refused the translated expression.
    #[error(
        "cron expression {expr:?} (sent to the cron parser as {translated:?}) rejected: {message}"
    )]
    Rejected {
        expr: String,
        translated: String,
        message: String,
    },
    /// Not an IANA timezone name.
    #[error("unknown timezone {name:?}: use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"{hint}")]
    UnknownTimezone { name: String, hint: String },
}

impl CronSpec {
    /// Parse and validate a schedule expression (see the module documentation for the syntax).
    pub fn parse(expr: &str) -> Result<CronSpec, CronError> {
        let original = expr.trim().to_string();
        let translated = translate(&original)?;
        let schedule =
            ::cron::Schedule::from_str(&translated).map_err(|e| CronError::Rejected {
                expr: original.clone(),
                translated: translated.clone(),
                message: e.to_string(),
            })?;
        Ok(CronSpec {
            original,
            translated,
            schedule,
        })
    }

    /// The expression as the user wrote it (trimmed).
    pub fn original(&self) -> &str {
        &self.original
    }

    /// The expression in the `cron` crate's syntax: what the crate received.
    pub fn translated(&self) -> &str {
        &self.translated
    }

    /// Next fire times strictly after `after`, as UTC instants, computed in `tz` local time
    /// with the DST policy in the module documentation (gap skipped, fold fires once at its
    /// first occurrence). Strictly increasing; exactly `n` unless the expression runs out of
    /// future times (a year field in the past, or beyond the `cron` crate's year 2100).
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n.min(1024));
        if n == 0 {
            return out;
        }
        // Walk the schedule over naive local wall-clock times: UTC has no gaps or folds, so
        // the crate's iterator over `Utc` is an iterator over naive times.
        let start: NaiveDateTime = after.with_timezone(&tz).naive_local();
        for candidate in self.schedule.after(&start.and_utc()) {
            let naive = candidate.naive_utc();
            let instant = match tz.from_local_datetime(&naive) {
                // Spring-forward gap: this wall-clock time does not exist today. Skip it.
                LocalResult::None => continue,
                LocalResult::Single(t) => t.with_timezone(&Utc),
                // Fall-back fold: fire once, at the earlier instant.
                LocalResult::Ambiguous(a, b) => a.with_timezone(&Utc).min(b.with_timezone(&Utc)),
            };
            // Only in a fold can the mapped instant be at or before `after` (the first
            // occurrence has already passed while we are in the second): it does not fire again.
            if instant <= after {
                continue;
            }
            out.push(instant);
            if out.len() == n {
                break;
            }
        }
        out
    }
}

impl FromStr for CronSpec {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronSpec::parse(s)
    }
}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// Parse an IANA timezone name (`Europe/Berlin`, `America/New_York`, `UTC`, ...). Names are
/// case-sensitive as in the tz database; a name that only differs in case is suggested.
pub fn parse_timezone(name: &str) -> Result<Tz, CronError> {
    let trimmed = name.trim();
    if let Ok(tz) = trimmed.parse::<Tz>() {
        return Ok(tz);
    }
    let hint = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(trimmed))
        .map(|tz| format!(" (did you mean {:?}?)", tz.name()))
        .unwrap_or_default();
    Err(CronError::UnknownTimezone {
        name: name.to_string(),
        hint,
    })
}

// ---------------------------------------------------------------------------------------------
// Translation
// ---------------------------------------------------------------------------------------------

const DOW_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Second => "second",
            Kind::Minute => "minute",
            Kind::Hour => "hour",
            Kind::DayOfMonth => "day-of-month",
            Kind::Month => "month",
            Kind::DayOfWeek => "day-of-week",
            Kind::Year => "year",
        }
    }

    /// Inclusive bounds in the user's numbering.
    fn bounds(self) -> (u32, u32) {
        match self {
            Kind::Second | Kind::Minute => (0, 59),
            Kind::Hour => (0, 23),
            Kind::DayOfMonth => (1, 31),
            Kind::Month => (1, 12),
            Kind::DayOfWeek => (0, 7),
            Kind::Year => (1970, 2100),
        }
    }

    fn allowed(self) -> &'static str {
        match self {
            Kind::Second | Kind::Minute => "values are 0-59",
            Kind::Hour => "values are 0-23",
            Kind::DayOfMonth => "values are 1-31",
            Kind::Month => "values are 1-12 or JAN-DEC",
            Kind::DayOfWeek => "values are 0-7 (0 and 7 are Sunday) or SUN-SAT",
            Kind::Year => "values are 1970-2100",
        }
    }

    fn allows_any(self) -> bool {
        matches!(self, Kind::DayOfMonth | Kind::DayOfWeek)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    /// `*`
    All,
    /// `?`
    Any,
    One(u32),
    Range(u32, u32),
}

#[derive(Debug, Clone, Copy)]
struct Item {
    base: Base,
    step: Option<u32>,
}

/// One parsed field: its items and the set of values it selects (day-of-week: 0-6, Sunday 0).
#[derive(Debug)]
struct Field {
    kind: Kind,
    text: String,
    items: Vec<Item>,
    values: BTreeSet<u32>,
}

impl Field {
    fn is_full(&self) -> bool {
        let (lo, hi) = match self.kind {
            Kind::DayOfWeek => (0, 6),
            k => k.bounds(),
        };
        (lo..=hi).all(|v| self.values.contains(&v))
    }

    /// The field in the `cron` crate's syntax.
    fn render(&self) -> String {
        if let [Item {
            base: b @ (Base::All | Base::Any),
            step: None,
        }] = self.items.as_slice()
        {
            return if *b == Base::All { "*" } else { "?" }.to_string();
        }
        if self.kind == Kind::DayOfWeek {
            // Names mean the same thing to everyone, whatever the numbering.
            return self
                .values
                .iter()
                .map(|&v| DOW_NAMES[v as usize])
                .collect::<Vec<_>>()
                .join(",");
        }
        let (_, hi) = self.kind.bounds();
        self.items
            .iter()
            .map(|item| {
                let base = match item.base {
                    Base::All => "*".to_string(),
                    Base::Any => "?".to_string(),
                    Base::One(v) if item.step.is_some() => format!("{v}-{hi}"),
                    Base::One(v) => v.to_string(),
                    Base::Range(a, b) => format!("{a}-{b}"),
                };
                match item.step {
                    Some(s) => format!("{base}/{s}"),
                    None => base,
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn field_error(kind: Kind, text: &str, reason: impl Into<String>) -> CronError {
    CronError::Field {
        field: kind.label(),
        text: text.to_string(),
        reason: reason.into(),
    }
}

fn syntax_error(kind: Kind, text: &str, part: &str) -> CronError {
    field_error(
        kind,
        text,
        format!(
            "{part:?} is not valid: use *, a value, a range a-b, a step */n or a-b/n, or a \
             comma-separated list of these; {}",
            kind.allowed()
        ),
    )
}

/// Parse one value (number or name). `range_end` lets `SUN` close a day-of-week range as 7.
fn parse_value(kind: Kind, text: &str, tok: &str, range_end: bool) -> Result<u32, CronError> {
    let (lo, hi) = kind.bounds();
    if !tok.is_empty() && tok.bytes().all(|b| b.is_ascii_digit()) {
        return match tok.parse::<u32>() {
            Ok(v) if (lo..=hi).contains(&v) => Ok(v),
            _ => Err(field_error(
                kind,
                text,
                format!("{tok} is out of range: {}", kind.allowed()),
            )),
        };
    }
    if !tok.is_empty() && tok.bytes().all(|b| b.is_ascii_alphabetic()) {
        let upper = tok.to_ascii_uppercase();
        match kind {
            Kind::DayOfWeek => {
                if let Some(i) = DOW_NAMES.iter().position(|n| *n == upper) {
                    return Ok(if i == 0 && range_end { 7 } else { i as u32 });
                }
                return Err(field_error(
                    kind,
                    text,
                    format!("{tok:?} is not a day name: {}", kind.allowed()),
                ));
            }
            Kind::Month => {
                if let Some(i) = MONTH_NAMES.iter().position(|n| *n == upper) {
                    return Ok(i as u32 + 1);
                }
                return Err(field_error(
                    kind,
                    text,
                    format!("{tok:?} is not a month name: {}", kind.allowed()),
                ));
            }
            _ => {
                return Err(field_error(
                    kind,
                    text,
                    format!("{tok:?}: names are not allowed here, {}", kind.allowed()),
                ))
            }
        }
    }
    Err(syntax_error(kind, text, tok))
}

fn parse_field(kind: Kind, text: &str) -> Result<Field, CronError> {
    let (lo, hi) = kind.bounds();
    let mut items = Vec::new();
    let mut values = BTreeSet::new();
    let parts: Vec<&str> = text.split(',').collect();
    for part in &parts {
        let (base_text, step_text) = match part.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (*part, None),
        };
        let step = match step_text {
            None => None,
            Some(s) => {
                let max_step = hi;
                match s.parse::<u32>() {
                    Ok(n)
                        if s.bytes().all(|b| b.is_ascii_digit()) && (1..=max_step).contains(&n) =>
                    {
                        Some(n)
                    }
                    Ok(_) if s.bytes().all(|b| b.is_ascii_digit()) => {
                        return Err(field_error(
                            kind,
                            text,
                            format!("step {s} in {part:?} must be between 1 and {max_step}"),
                        ))
                    }
                    _ => return Err(syntax_error(kind, text, part)),
                }
            }
        };
        let base = match base_text {
            "*" => Base::All,
            "?" => {
                if !kind.allows_any() {
                    return Err(field_error(
                        kind,
                        text,
                        format!(
                            "? is only allowed in day-of-month and day-of-week; use *: {}",
                            kind.allowed()
                        ),
                    ));
                }
                if step.is_some() || parts.len() > 1 {
                    return Err(field_error(
                        kind,
                        text,
                        "? means \"any\" and must stand alone (no step, no list)",
                    ));
                }
                Base::Any
            }
            _ => match base_text.split_once('-') {
                Some((a, b)) => {
                    let a = parse_value(kind, text, a, false)?;
                    let b = parse_value(kind, text, b, true)?;
                    if a > b {
                        let hint = if kind == Kind::DayOfWeek {
                            " (for days that wrap past Sunday write e.g. 5-7 or FRI,SAT,SUN,MON)"
                        } else {
                            ""
                        };
                        return Err(field_error(
                            kind,
                            text,
                            format!("range {base_text:?} runs backwards (start after end); write it as a list{hint}"),
                        ));
                    }
                    Base::Range(a, b)
                }
                None => Base::One(parse_value(kind, text, base_text, false)?),
            },
        };
        let (from, to) = match base {
            Base::All | Base::Any if kind == Kind::DayOfWeek => (0, 6),
            Base::All | Base::Any => (lo, hi),
            Base::One(v) if step.is_some() => (v, hi),
            Base::One(v) => (v, v),
            Base::Range(a, b) => (a, b),
        };
        for v in (from..=to).step_by(step.unwrap_or(1) as usize) {
            values.insert(if kind == Kind::DayOfWeek { v % 7 } else { v });
        }
        items.push(Item { base, step });
    }
    Ok(Field {
        kind,
        text: text.to_string(),
        items,
        values,
    })
}

fn days_in_month_max(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Turn the user's expression into the `cron` crate's syntax, validating every field.
fn translate(expr: &str) -> Result<String, CronError> {
    if let Some(name) = expr.strip_prefix('@') {
        return match name.to_ascii_lowercase().as_str() {
            "yearly" | "annually" => Ok("0 0 0 1 1 *".to_string()),
            "monthly" => Ok("0 0 0 1 * *".to_string()),
            "weekly" => Ok("0 0 0 * * SUN".to_string()),
            "daily" | "midnight" => Ok("0 0 0 * * *".to_string()),
            "hourly" => Ok("0 0 * * * *".to_string()),
            "reboot" => Err(CronError::Reboot),
            _ => Err(CronError::UnknownMacro(expr.to_string())),
        };
    }
    let raw: Vec<&str> = expr.split_whitespace().collect();
    let (texts, kinds): (Vec<&str>, &[Kind]) = match raw.len() {
        5 => (
            raw.clone(),
            &[
                Kind::Minute,
                Kind::Hour,
                Kind::DayOfMonth,
                Kind::Month,
                Kind::DayOfWeek,
            ],
        ),
        6 => (
            raw.clone(),
            &[
                Kind::Second,
                Kind::Minute,
                Kind::Hour,
                Kind::DayOfMonth,
                Kind::Month,
                Kind::DayOfWeek,
            ],
        ),
        7 => (
            raw.clone(),
            &[
                Kind::Second,
                Kind::Minute,
                Kind::Hour,
                Kind::DayOfMonth,
                Kind::Month,
                Kind::DayOfWeek,
                Kind::Year,
            ],
        ),
        got => return Err(CronError::FieldCount { got }),
    };
    let fields = texts
        .iter()
        .zip(kinds)
        .map(|(text, kind)| parse_field(*kind, text))
        .collect::<Result<Vec<_>, _>>()?;
    let find = |k: Kind| fields.iter().find(|f| f.kind == k).expect("field present");
    let (dom, month, dow) = (
        find(Kind::DayOfMonth),
        find(Kind::Month),
        find(Kind::DayOfWeek),
    );
    if !dom.is_full() && !dow.is_full() {
        return Err(CronError::AmbiguousDays {
            dom: dom.text.clone(),
            dow: dow.text.clone(),
        });
    }
    let possible = month
        .values
        .iter()
        .any(|&m| dom.values.iter().any(|&d| d <= days_in_month_max(m)));
    if !possible {
        return Err(CronError::NeverFires {
            dom: dom.text.clone(),
            month: month.text.clone(),
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(7);
    if raw.len() == 5 {
        out.push("0".to_string());
    }
    out.extend(fields.iter().map(Field::render));
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests;
