//! Durations as people write them in settings and request bodies: `30` (seconds), `250ms`,
//! `30s`, `5m`, `2h`, `90d`. A leaf: the configuration, the CLI and API bodies (a token's
//! `expires_in`) all read durations this one way, so a value that works in one place works
//! in the others.

use std::time::Duration;

/// `30`, `30s`, `5m`, `2h`, `90d` → Duration; the error says what a good value looks like.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 5m or 2h, got {v:?}"))?;
    let per_unit: u64 = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?}; use ms, s, m, h or d"
            ))
        }
    };
    // A request body can carry any number: too large is an error, never an overflow.
    n.checked_mul(per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {v:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn a_duration_too_long_to_count_is_an_error_not_an_overflow() {
        assert!(parse_duration("18446744073709551615d").is_err());
        assert!(parse_duration("213503982334602d").is_err());
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }
}
