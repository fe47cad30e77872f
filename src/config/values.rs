//! Value syntaxes shared by several keys. Durations themselves are [`crate::duration`]'s
//! (API bodies read them too).

use std::time::Duration;

use crate::duration::parse_duration;

pub(super) fn positive_duration(v: &str) -> Result<Duration, String> {
    match parse_duration(v) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be more than 0".into()),
        Err(e) => Err(e),
    }
}

pub(super) fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "drover".into());
    format!("{host}-{}", std::process::id())
}

/// A comma-separated list of networks (`10.0.0.0/8, fd00::/8`); a bare address is that one
/// host. Empty: no network.
pub(super) fn networks(v: &str) -> Result<Vec<ipnet::IpNet>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!(
                        "{item:?} is not a network: expected comma-separated CIDRs like \
                         10.0.0.0/8 or fd00::/8"
                    )
                })
        })
        .collect()
}
