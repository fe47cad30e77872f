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
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?}; use ms, s, m, h or d"
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}
