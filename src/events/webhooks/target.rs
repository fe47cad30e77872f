//! Where a webhook may send: public addresses only, unless `webhook_allowed_networks`
//! opens a network, and never the control database.
//!
//! A subscription's URL is chosen by whoever may create webhooks, and drover POSTs to it
//! from inside the deployment's network. Without this policy a URL could reach the cloud
//! metadata service (169.254.169.254), loopback services or the control DB's port.
//!
//! ```text
//!  literal IP in the URL ── check(ip, port) ── refused: 422 at creation, `dead` at send
//!  host name ── GuardedResolver (at connect time, every connection) ── resolved addresses
//!               filtered by the same check; none left: the send fails with [`Refused`]
//! ```
//!
//! The check runs on the addresses the connection will actually use, inside reqwest's
//! resolver, so a name that resolves to a public address when the subscription is
//! created and to a private one later (DNS rebinding) is still refused. Redirects are not
//! followed (see `deliver`) and no HTTP proxy is used, so the connected address is the
//! checked one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Why an address is refused (each names itself in messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Loopback,
    LinkLocal,
    Private,
    SharedAddressSpace,
    UniqueLocal,
    Unspecified,
    Multicast,
    Broadcast,
    ControlDatabase,
}

impl Rule {
    /// The rule's name in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::Loopback => "a loopback address",
            Rule::LinkLocal => "a link-local address (this includes cloud metadata services)",
            Rule::Private => "a private (RFC 1918) address",
            Rule::SharedAddressSpace => "a carrier-grade NAT address (100.64.0.0/10)",
            Rule::UniqueLocal => "a unique-local IPv6 address (fc00::/7)",
            Rule::Unspecified => "the unspecified address",
            Rule::Multicast => "a multicast address",
            Rule::Broadcast => "the broadcast address",
            Rule::ControlDatabase => "the control database's address",
        }
    }
}

/// A refused target: the address and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub addr: IpAddr,
    pub rule: Rule,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rule == Rule::ControlDatabase {
            write!(
                f,
                "refused: {} is {}; webhooks never reach it",
                self.addr,
                self.rule.describe()
            )
        } else {
            write!(
                f,
                "refused: {} is {}; webhooks reach public addresses only \
                 (list its network in webhook_allowed_networks to allow it)",
                self.addr,
                self.rule.describe()
            )
        }
    }
}

impl std::error::Error for Refused {}

/// Which addresses webhooks may reach.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Networks opened explicitly (in-cluster receivers).
    pub allowed: Vec<IpNet>,
    /// The control DB's addresses: refused on its port whatever `allowed` says.
    pub control_db: Vec<SocketAddr>,
}

/// The range rule an address falls under, if any (before the allowed networks).
pub fn special_range(ip: IpAddr) -> Option<Rule> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4_rule(v4),
        IpAddr::V6(v6) => v6_rule(v6),
    }
}

fn v4_rule(ip: Ipv4Addr) -> Option<Rule> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some(Rule::Loopback)
    } else if ip.is_link_local() {
        Some(Rule::LinkLocal)
    } else if ip.is_private() {
        Some(Rule::Private)
    } else if a == 100 && (64..128).contains(&b) {
        Some(Rule::SharedAddressSpace)
    } else if ip.is_unspecified() || a == 0 {
        Some(Rule::Unspecified)
    } else if ip.is_multicast() {
        Some(Rule::Multicast)
    } else if ip.is_broadcast() {
        Some(Rule::Broadcast)
    } else {
        None
    }
}

fn v6_rule(ip: Ipv6Addr) -> Option<Rule> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some(Rule::Loopback)
    } else if ip.is_unspecified() {
        Some(Rule::Unspecified)
    } else if first & 0xffc0 == 0xfe80 {
        Some(Rule::LinkLocal)
    } else if first & 0xfe00 == 0xfc00 {
        Some(Rule::UniqueLocal)
    } else if ip.is_multicast() {
        Some(Rule::Multicast)
    } else {
        None
    }
}

impl Policy {
    /// Whether `ip` may be reached on `port` (`None`: any port, as the resolver sees it).
    pub fn check(&self, ip: IpAddr, port: Option<u16>) -> Result<(), Refused> {
        let ip = ip.to_canonical();
        let db = self
            .control_db
            .iter()
            .any(|a| a.ip().to_canonical() == ip && port.is_none_or(|p| p == a.port()));
        if db {
            return Err(Refused {
                addr: ip,
                rule: Rule::ControlDatabase,
            });
        }
        match special_range(ip) {
            Some(_) if self.allowed.iter().any(|n| n.contains(&ip)) => Ok(()),
            Some(rule) => Err(Refused { addr: ip, rule }),
            None => Ok(()),
        }
    }

    /// The control DB's ports: a URL on one of them is sent through the strict resolver,
    /// which refuses the control DB's addresses even inside `allowed`.
    pub fn is_control_db_port(&self, port: u16) -> bool {
        self.control_db.iter().any(|a| a.port() == port)
    }

    /// The refusal of a URL whose host is a literal address, if it is refused.
    pub fn check_literal(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let port = url.port_or_known_default();
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check(IpAddr::V4(ip), port),
            Some(url::Host::Ipv6(ip)) => self.check(IpAddr::V6(ip), port),
            _ => Ok(()),
        }
    }
}

/// reqwest's resolver for webhook sends: the system resolver, then the policy on every
/// address. `strict` (URLs on a control-DB port) also refuses the control DB's addresses
/// inside the allowed networks.
pub struct GuardedResolver {
    pub policy: Arc<Policy>,
    pub strict: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let strict = self.strict;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let mut kept = Vec::new();
            for a in found {
                let verdict = if strict {
                    policy.check(a.ip(), None)
                } else {
                    policy.check_ranges(a.ip())
                };
                match verdict {
                    Ok(()) => kept.push(a),
                    Err(r) => refused = refused.or(Some(r)),
                }
            }
            match (kept.is_empty(), refused) {
                (true, Some(r)) => Err(Box::new(r) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

impl Policy {
    /// The range rules only (the control DB is on another port than this URL's).
    fn check_ranges(&self, ip: IpAddr) -> Result<(), Refused> {
        let ip = ip.to_canonical();
        match special_range(ip) {
            Some(_) if self.allowed.iter().any(|n| n.contains(&ip)) => Ok(()),
            Some(rule) => Err(Refused { addr: ip, rule }),
            None => Ok(()),
        }
    }
}

/// The refusal inside a failed send, if that is why it failed.
pub fn refusal_in(e: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_ranges_are_refused_and_public_addresses_pass() {
        let p = Policy::default();
        for (addr, rule) in [
            ("127.0.0.1", Rule::Loopback),
            ("::1", Rule::Loopback),
            ("169.254.169.254", Rule::LinkLocal),
            ("fe80::1", Rule::LinkLocal),
            ("10.0.0.1", Rule::Private),
            ("172.16.5.4", Rule::Private),
            ("192.168.1.1", Rule::Private),
            ("100.64.0.1", Rule::SharedAddressSpace),
            ("fd00::1", Rule::UniqueLocal),
            ("0.0.0.0", Rule::Unspecified),
            ("::", Rule::Unspecified),
            ("224.0.0.1", Rule::Multicast),
            ("ff02::1", Rule::Multicast),
            ("255.255.255.255", Rule::Broadcast),
            ("::ffff:127.0.0.1", Rule::Loopback),
            ("::ffff:169.254.169.254", Rule::LinkLocal),
        ] {
            assert_eq!(p.check(ip(addr), None).unwrap_err().rule, rule, "{addr}");
        }
        for ok in ["93.184.216.34", "2606:4700::1111", "100.128.0.1"] {
            assert!(p.check(ip(ok), Some(443)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn allowed_networks_open_ranges_but_never_the_control_database() {
        let p = Policy {
            allowed: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            control_db: vec!["10.0.0.5:5432".parse().unwrap()],
        };
        assert!(p.check(ip("10.1.2.3"), Some(80)).is_ok());
        assert!(p.check(ip("::1"), Some(80)).is_ok());
        assert!(p.check(ip("10.0.0.5"), Some(80)).is_ok());
        assert_eq!(
            p.check(ip("10.0.0.5"), Some(5432)).unwrap_err().rule,
            Rule::ControlDatabase
        );
        assert_eq!(
            p.check(ip("127.0.0.1"), Some(80)).unwrap_err().rule,
            Rule::Loopback
        );
    }

    #[test]
    fn a_literal_url_is_checked_on_its_port() {
        let p = Policy::default();
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(p.check_literal(&url("http://[::1]/")).is_err());
        assert!(p.check_literal(&url("http://2130706433/")).is_err());
        assert!(p.check_literal(&url("https://hooks.example.com/")).is_ok());
        let msg = p
            .check_literal(&url("http://169.254.169.254/latest"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("link-local"), "{msg}");
    }
}
