use super::*;
use chrono::{Datelike, Timelike, Weekday};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// 2026-03-01 00:00 UTC, a Sunday.
fn sunday() -> DateTime<Utc> {
    let t = utc(2026, 3, 1, 0, 0, 0);
    assert_eq!(t.weekday(), Weekday::Sun);
    t
}

fn next_utc(expr: &str, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    CronSpec::parse(expr)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .next_after(Tz::UTC, after, n)
}

fn weekdays(times: &[DateTime<Utc>]) -> Vec<Weekday> {
    times.iter().map(|t| t.weekday()).collect()
}

fn err(expr: &str) -> String {
    match CronSpec::parse(expr) {
        Ok(spec) => panic!("{expr:?} was accepted as {:?}", spec.translated()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_cron_crate_itself_counts_day_of_week_from_sunday_as_1() {
    // This is the numbering drover hides: verify it rather than trusting the docs.
    let s = ::cron::Schedule::from_str("0 0 3 * * 1").unwrap();
    let next: Vec<_> = s.after(&sunday()).take(2).collect();
    assert_eq!(weekdays(&next), vec![Weekday::Sun, Weekday::Sun]);
    let s = ::cron::Schedule::from_str("0 0 3 * * 2-6").unwrap();
    let next: Vec<_> = s.after(&sunday()).take(5).collect();
    assert_eq!(
        weekdays(&next),
        vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri
        ]
    );
    assert!(::cron::Schedule::from_str("0 3 * * 1").is_err(), "5 fields");
}

#[test]
fn five_field_1_to_5_means_monday_to_friday() {
    let spec = CronSpec::parse("0 3 * * 1-5").unwrap();
    assert_eq!(spec.original(), "0 3 * * 1-5");
    assert_eq!(spec.translated(), "0 0 3 * * MON,TUE,WED,THU,FRI");
    let next = spec.next_after(Tz::UTC, sunday(), 6);
    let expected: Vec<_> = (2..=6)
        .chain(std::iter::once(9))
        .map(|d| utc(2026, 3, d, 3, 0, 0))
        .collect();
    assert_eq!(next, expected);
    assert_eq!(
        weekdays(&next[..5]),
        vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri
        ]
    );
}

#[test]
fn zero_and_seven_are_sunday_and_names_work() {
    for expr in [
        "0 3 * * 0",
        "0 3 * * 7",
        "0 3 * * SUN",
        "0 3 * * sun",
        "0 3 * * Sun",
    ] {
        let next = next_utc(expr, sunday(), 4);
        assert_eq!(next.len(), 4, "{expr}");
        assert!(
            next.iter()
                .all(|t| t.weekday() == Weekday::Sun && t.hour() == 3),
            "{expr}: {next:?}"
        );
        assert_eq!(next[0], utc(2026, 3, 1, 3, 0, 0), "{expr}");
    }
    let next = next_utc("0 3 * * 5-7", sunday(), 4);
    assert_eq!(
        weekdays(&next),
        vec![Weekday::Sun, Weekday::Fri, Weekday::Sat, Weekday::Sun]
    );
    assert_eq!(next[1], utc(2026, 3, 6, 3, 0, 0));
    // Names, ranges of names, a range closed by SUN, lists, steps.
    let days = |expr: &str| weekdays(&next_utc(expr, sunday(), 7));
    assert_eq!(days("0 3 * * FRI-SUN"), days("0 3 * * 5-7"));
    assert_eq!(days("0 3 * * mon-fri"), days("0 3 * * 1-5"));
    assert_eq!(
        days("0 3 * * 1,3,5")[..3],
        [Weekday::Mon, Weekday::Wed, Weekday::Fri]
    );
    assert_eq!(
        days("0 3 * * 1-5/2")[..3],
        [Weekday::Mon, Weekday::Wed, Weekday::Fri]
    );
    assert_eq!(
        days("0 3 * * */2")[..4],
        [Weekday::Sun, Weekday::Tue, Weekday::Thu, Weekday::Sat]
    );
    assert_eq!(days("0 3 * * 1-7").len(), 7);
    assert_eq!(
        CronSpec::parse("0 3 * * 1-5/2").unwrap().translated(),
        "0 0 3 * * MON,WED,FRI"
    );
    assert_eq!(
        CronSpec::parse("0 3 * * 5-7").unwrap().translated(),
        "0 0 3 * * SUN,FRI,SAT"
    );
}

#[test]
fn six_and_seven_field_forms_have_seconds_and_the_same_day_of_week() {
    let spec = CronSpec::parse("30 15 3 * * 1").unwrap();
    assert_eq!(spec.translated(), "30 15 3 * * MON");
    assert_eq!(
        spec.next_after(Tz::UTC, sunday(), 2),
        vec![utc(2026, 3, 2, 3, 15, 30), utc(2026, 3, 9, 3, 15, 30)]
    );
    let every_10s = next_utc("*/10 * * * * *", sunday(), 3);
    assert_eq!(
        every_10s,
        vec![
            utc(2026, 3, 1, 0, 0, 10),
            utc(2026, 3, 1, 0, 0, 20),
            utc(2026, 3, 1, 0, 0, 30)
        ]
    );
    // Year field.
    let spec = CronSpec::parse("0 0 12 1 JAN ? 2027-2028").unwrap();
    assert_eq!(spec.translated(), "0 0 12 1 1 ? 2027-2028");
    assert_eq!(
        spec.next_after(Tz::UTC, sunday(), 5),
        vec![utc(2027, 1, 1, 12, 0, 0), utc(2028, 1, 1, 12, 0, 0)],
        "runs out of years: fewer than n"
    );
    // 7 fields, day-of-week 0 is still Sunday.
    let next = next_utc("0 0 3 * * 0 2026", sunday(), 2);
    assert_eq!(weekdays(&next), vec![Weekday::Sun, Weekday::Sun]);
}

#[test]
fn macros_daily_hourly_weekly_and_friends() {
    let start = utc(2026, 3, 4, 10, 20, 0); // a Wednesday
    assert_eq!(
        next_utc("@daily", start, 2),
        vec![utc(2026, 3, 5, 0, 0, 0), utc(2026, 3, 6, 0, 0, 0)]
    );
    assert_eq!(
        next_utc("@midnight", start, 2),
        next_utc("@daily", start, 2)
    );
    assert_eq!(
        next_utc("@hourly", start, 2),
        vec![utc(2026, 3, 4, 11, 0, 0), utc(2026, 3, 4, 12, 0, 0)]
    );
    let weekly = next_utc("@weekly", start, 2);
    assert_eq!(
        weekly,
        vec![utc(2026, 3, 8, 0, 0, 0), utc(2026, 3, 15, 0, 0, 0)]
    );
    assert_eq!(weekdays(&weekly), vec![Weekday::Sun, Weekday::Sun]);
    assert_eq!(
        next_utc("@monthly", start, 1),
        vec![utc(2026, 4, 1, 0, 0, 0)]
    );
    assert_eq!(
        next_utc("@yearly", start, 1),
        vec![utc(2027, 1, 1, 0, 0, 0)]
    );
    assert_eq!(
        next_utc("@annually", start, 1),
        vec![utc(2027, 1, 1, 0, 0, 0)]
    );
}

#[test]
fn rejects_bad_expressions_with_messages_naming_the_field() {
    assert_eq!(
        err("0 3 * *"),
        "expected 5 fields (minute hour day-of-month month day-of-week), 6 or 7 with \
         seconds (and year), or a macro like @daily; got 4"
    );
    assert!(err("0 0 3 * * * 2026 x").ends_with("got 8"));
    assert!(err("").ends_with("got 0"));
    assert_eq!(
        err("0 3 * * 8"),
        "day-of-week field \"8\": 8 is out of range: values are 0-7 (0 and 7 are Sunday) \
         or SUN-SAT"
    );
    assert_eq!(
        err("61 * * * *"),
        "minute field \"61\": 61 is out of range: values are 0-59"
    );
    assert!(err("@reboot").contains("@reboot is not supported"));
    assert!(err("@fortnightly").contains("unknown macro \"@fortnightly\""));
    assert!(err("a b c d e").starts_with("minute field \"a\""));
    assert!(err("0 3 * * MONDAY").starts_with("day-of-week field \"MONDAY\""));
    assert!(err("0 24 * * *").starts_with("hour field \"24\""));
    assert!(err("0 3 0 * *").starts_with("day-of-month field \"0\""));
    assert!(err("0 3 * 13 *").starts_with("month field \"13\""));
    assert!(err("0 3 * FOO *").contains("not a month name"));
    assert!(err("0 3 * * 5-1").contains("runs backwards"));
    assert!(err("*/0 * * * *").contains("step 0"));
    assert!(err("1-2-3 * * * *").starts_with("minute field"));
    assert!(err("1,,2 * * * *").starts_with("minute field"));
    assert!(err("? * * * *").contains("only allowed in day-of-month and day-of-week"));
    assert!(err("0 0 3 * * * 1969").starts_with("year field"));
    assert!(err("0 3 1 * MON").contains("both restricted"));
    assert!(err("0 0 31 2 *").contains("never fire"));
    assert!(CronSpec::parse("0 0 31 1,2 *").is_ok(), "31 January exists");
    assert!(err("0 3 * * 99999999999").contains("out of range"));
    assert!(err("0 3 * * 1;2").starts_with("day-of-week field"));
}

#[test]
fn the_cron_crate_alone_would_fire_twice_in_the_fall_back_fold() {
    // Why drover walks naive local times: with the timezone handed to the crate, the
    // ambiguous 02:30 comes out twice.
    let s = ::cron::Schedule::from_str("0 30 2 * * *").unwrap();
    let tz = chrono_tz::Europe::Berlin;
    let from = tz.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap();
    let on_the_25th = s.after(&from).take(4).filter(|t| t.day() == 25).count();
    assert_eq!(on_the_25th, 2);
}

#[test]
fn a_nonexistent_local_time_is_skipped_on_spring_forward_day() {
    let tz = parse_timezone("Europe/Berlin").unwrap();
    let spec = CronSpec::parse("30 2 * * *").unwrap();
    let next = spec.next_after(tz, utc(2026, 3, 27, 12, 0, 0), 3);
    let local: Vec<String> = next
        .iter()
        .map(|t| t.with_timezone(&tz).to_rfc3339())
        .collect();
    assert_eq!(
        local,
        vec![
            "2026-03-28T02:30:00+01:00",
            "2026-03-30T02:30:00+02:00",
            "2026-03-31T02:30:00+02:00"
        ]
    );
    // Every minute of the missing hour is skipped; the clock resumes at 03:00 CEST.
    let spec = CronSpec::parse("*/20 * * * *").unwrap();
    let next = spec.next_after(tz, utc(2026, 3, 29, 0, 30, 0), 3); // 01:30 CET
    let local: Vec<String> = next
        .iter()
        .map(|t| t.with_timezone(&tz).to_rfc3339())
        .collect();
    assert_eq!(
        local,
        vec![
            "2026-03-29T01:40:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T03:20:00+02:00"
        ]
    );
}

#[test]
fn an_ambiguous_local_time_fires_once_on_fall_back_day() {
    let tz = parse_timezone("Europe/Berlin").unwrap();
    let spec = CronSpec::parse("30 2 * * *").unwrap();
    let next = spec.next_after(tz, utc(2026, 10, 23, 12, 0, 0), 4);
    let local: Vec<String> = next
        .iter()
        .map(|t| t.with_timezone(&tz).to_rfc3339())
        .collect();
    assert_eq!(
        local,
        vec![
            "2026-10-24T02:30:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-26T02:30:00+01:00",
            "2026-10-27T02:30:00+01:00"
        ]
    );
    assert_eq!(
        next[1],
        utc(2026, 10, 25, 0, 30, 0),
        "first (CEST) occurrence"
    );
    // Asked from inside the fold, after the first 02:30 has passed (02:10 CET, the second
    // time round), the second 02:30 does not fire.
    let inside = utc(2026, 10, 25, 1, 10, 0);
    assert_eq!(
        inside.with_timezone(&tz).to_rfc3339(),
        "2026-10-25T02:10:00+01:00"
    );
    assert_eq!(
        spec.next_after(tz, inside, 1),
        vec![utc(2026, 10, 26, 1, 30, 0)]
    );
    // From between the two: same.
    assert_eq!(
        spec.next_after(tz, utc(2026, 10, 25, 0, 45, 0), 1),
        vec![utc(2026, 10, 26, 1, 30, 0)]
    );
}

#[test]
fn results_are_strictly_increasing_across_both_transitions() {
    let tz = parse_timezone("America/New_York").unwrap();
    let spec = CronSpec::parse("*/15 * * * *").unwrap();
    for start in [utc(2026, 3, 8, 5, 0, 0), utc(2026, 11, 1, 4, 0, 0)] {
        let next = spec.next_after(tz, start, 24);
        assert_eq!(next.len(), 24);
        assert!(next[0] > start);
        assert!(next.windows(2).all(|w| w[0] < w[1]), "{next:?}");
    }
    // Strictly after: a fire time equal to `after` is not repeated.
    let at = utc(2026, 3, 2, 3, 0, 0);
    assert_eq!(next_utc("0 3 * * *", at, 1), vec![utc(2026, 3, 3, 3, 0, 0)]);
    assert_eq!(
        next_utc("0 3 * * *", at - chrono::Duration::milliseconds(1), 1),
        vec![at]
    );
    assert!(next_utc("0 3 * * *", at, 0).is_empty());
}

#[test]
fn next_five_times_in_a_timezone() {
    let tz = parse_timezone("America/New_York").unwrap();
    let spec = CronSpec::parse("0 9 * * MON").unwrap();
    // 2026-03-01 is a Sunday; US DST starts 2026-03-08, so the offset changes midway.
    let next = spec.next_after(tz, sunday(), 5);
    let local: Vec<String> = next
        .iter()
        .map(|t| t.with_timezone(&tz).to_rfc3339())
        .collect();
    assert_eq!(
        local,
        vec![
            "2026-03-02T09:00:00-05:00",
            "2026-03-09T09:00:00-04:00",
            "2026-03-16T09:00:00-04:00",
            "2026-03-23T09:00:00-04:00",
            "2026-03-30T09:00:00-04:00"
        ]
    );
    assert_eq!(next[0], utc(2026, 3, 2, 14, 0, 0));
    assert_eq!(next[1], utc(2026, 3, 9, 13, 0, 0));
}

#[test]
fn timezones_parse_by_iana_name_and_bad_names_are_named_in_the_error() {
    assert_eq!(parse_timezone("UTC").unwrap(), Tz::UTC);
    assert_eq!(parse_timezone("Etc/UTC").unwrap(), Tz::Etc__UTC);
    assert_eq!(
        parse_timezone("Europe/Berlin").unwrap(),
        chrono_tz::Europe::Berlin
    );
    assert_eq!(
        parse_timezone(" America/New_York ").unwrap(),
        chrono_tz::America::New_York
    );
    let e = parse_timezone("Mars/Olympus_Mons").unwrap_err().to_string();
    assert!(
        e.starts_with("unknown timezone \"Mars/Olympus_Mons\""),
        "{e}"
    );
    assert!(!e.contains("did you mean"), "{e}");
    let e = parse_timezone("europe/berlin").unwrap_err().to_string();
    assert!(e.contains("did you mean \"Europe/Berlin\"?"), "{e}");
    assert!(parse_timezone("").is_err());
    assert!(parse_timezone("+02:00").is_err());
}

#[test]
fn spec_keeps_the_original_and_displays_it() {
    let spec: CronSpec = "  0 3 * * mon-fri ".parse().unwrap();
    assert_eq!(spec.original(), "0 3 * * mon-fri");
    assert_eq!(spec.to_string(), "0 3 * * mon-fri");
    assert_eq!(spec.translated(), "0 0 3 * * MON,TUE,WED,THU,FRI");
    let spec = CronSpec::parse("0 22 * JAN-MAR,DEC *").unwrap();
    assert_eq!(spec.translated(), "0 0 22 * 1-3,12 *");
    let spec = CronSpec::parse("0 10/20 * * *").unwrap();
    assert_eq!(spec.translated(), "0 0 10-23/20 * * *");
    assert_eq!(
        spec.next_after(Tz::UTC, sunday(), 2),
        vec![utc(2026, 3, 1, 10, 0, 0), utc(2026, 3, 2, 10, 0, 0)]
    );
    assert_eq!(
        CronSpec::parse("@WEEKLY").unwrap().translated(),
        "0 0 0 * * SUN"
    );
}

#[test]
fn a_token_of_neither_digits_nor_letters_is_a_syntax_error_not_a_bad_name() {
    assert_eq!(
        err("0 3 * * 1;2"),
        "day-of-week field \"1;2\": \"1;2\" is not valid: use *, a value, a range a-b, a \
         step */n or a-b/n, or a comma-separated list of these; values are 0-7 (0 and 7 \
         are Sunday) or SUN-SAT"
    );
    assert!(
        err("1,,2 * * * *").starts_with("minute field \"1,,2\": \"\" is not valid"),
        "an empty list item"
    );
    // `u32` parses "+5" as 5: a signed step is refused as syntax, not as a range.
    assert!(err("*/+5 * * * *").starts_with("minute field \"*/+5\": \"*/+5\" is not valid"));
    assert!(err("*/60 * * * *").contains("step 60 in \"*/60\" must be between 1 and 59"));
}

#[test]
fn a_question_mark_stands_alone_without_a_step_or_a_list() {
    for expr in ["0 0 12 ?/2 * *", "0 0 12 ?,1 JAN *", "0 0 12 1,? JAN *"] {
        assert!(err(expr).contains("must stand alone"), "{expr}");
    }
    assert_eq!(
        CronSpec::parse("0 0 12 ? JAN MON").unwrap().translated(),
        "0 0 12 ? 1 MON"
    );
}

#[test]
fn a_range_of_one_value_is_accepted_and_a_backwards_one_names_the_wrap_only_for_days() {
    assert_eq!(
        CronSpec::parse("3-3 5 * * *").unwrap().translated(),
        "0 3-3 5 * * *"
    );
    assert_eq!(
        CronSpec::parse("0 3 * * 2-2").unwrap().translated(),
        "0 0 3 * * TUE"
    );
    assert_eq!(
        err("0 3 * * 5-1"),
        "day-of-week field \"5-1\": range \"5-1\" runs backwards (start after end); write \
         it as a list (for days that wrap past Sunday write e.g. 5-7 or FRI,SAT,SUN,MON)"
    );
    assert_eq!(
        err("50-10 * * * *"),
        "minute field \"50-10\": range \"50-10\" runs backwards (start after end); write it \
         as a list"
    );
}

#[test]
fn a_stepped_single_value_runs_to_the_end_of_its_field() {
    // 1/2 is 1, 3, 5, 7: Sunday is 7 as well as 0.
    assert_eq!(
        CronSpec::parse("0 3 * * 1/2").unwrap().translated(),
        "0 0 3 * * SUN,MON,WED,FRI"
    );
    // A stepped day-of-month restricts it as much as a list does.
    assert!(err("0 3 1/2 * MON").contains("both restricted"));
}

#[test]
fn the_31st_never_comes_in_the_30_day_months() {
    for month in ["4", "6", "9", "11", "4,6,9,11"] {
        assert!(
            err(&format!("0 0 31 {month} *")).contains("never fire"),
            "{month}"
        );
    }
    assert!(CronSpec::parse("0 0 30 4,6,9,11 *").is_ok());
    assert!(CronSpec::parse("0 0 29 2 *").is_ok(), "leap years");
    assert!(CronSpec::parse("0 0 31 4,5 *").is_ok(), "31 May exists");
}
