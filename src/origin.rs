//! Where a console request came from, as the browser saw it: the origin a login or a form
//! must carry, whether the session cookie is `Secure`, and the client's address.
//!
//! ```text
//!  browser ──https──► proxy (ends TLS) ──http──► drover
//!     Origin: https://drover.example.com        peer: the proxy's address
//!                                               X-Forwarded-Proto/-Host/-For: the proxy's word
//! ```
//!
//! Behind a proxy drover itself only sees plain HTTP from the proxy, so the browser's view
//! has to come from somewhere it can trust:
//! - **`public_url`** (one setting, no headers believed): the console's one origin. Logins
//!   and forms must come from it; the cookie is `Secure` when it is https.
//! - **`trusted_proxies`**: without `public_url`, the origin is the request's own scheme and
//!   `Host`, and a peer inside one of these networks may correct them with
//!   `X-Forwarded-Proto` and `X-Forwarded-Host` (the right-most value: the one the nearest
//!   proxy wrote). From any other peer the headers are ignored: a client that forges
//!   `X-Forwarded-Proto: https` gains nothing. `X-Forwarded-For` is read the same way,
//!   for the client address in the login log line.
//!
//! The TCP peer reaches handlers as axum's `ConnectInfo<SocketAddr>` (the listener is served
//! with connect info, plain and TLS alike); read through [`Peer`], which is `None` where the
//! router runs without it.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Extensions, HeaderMap};
use ipnet::IpNet;

const FORWARDED_PROTO: &str = "x-forwarded-proto";
const FORWARDED_HOST: &str = "x-forwarded-host";
const FORWARDED_FOR: &str = "x-forwarded-for";

/// What the console needs from the configuration.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// The origin browsers reach the console at, when a proxy sits in front of drover.
    pub public_url: Option<PublicUrl>,
    /// How long a session lasts after login (the cookie's Max-Age too).
    pub session_ttl: Duration,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// Whether drover's own listener speaks HTTPS.
    pub https_listener: bool,
}

/// An absolute `http(s)://host[:port]` origin, without path, query or credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    origin: String,
    https: bool,
}

impl PublicUrl {
    /// Parses `https://drover.example.com` (a trailing `/` is allowed; nothing after it).
    pub fn parse(v: &str) -> Result<PublicUrl, String> {
        let url = url::Url::parse(v).map_err(|e| {
            format!("expected an absolute URL like https://drover.example.com ({e})")
        })?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("expected an http:// or https:// URL, not {other}:")),
        };
        if url.host().is_none() {
            return Err("expected a URL with a host, like https://drover.example.com".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not hold credentials".into());
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(
                "must be an origin (scheme, host, optional port) without a path: the console \
                 is served at /ui/ on the root of that host"
                    .into(),
            );
        }
        Ok(PublicUrl {
            // What a browser sends in `Origin`: lower-case host, default port left out.
            origin: url.origin().ascii_serialization(),
            https,
        })
    }

    /// `https://drover.example.com`, as browsers write it in `Origin`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether the scheme is https.
    pub fn is_https(&self) -> bool {
        self.https
    }
}

/// Networks whose peers may tell drover the browser's scheme, host and address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of CIDRs (`10.0.0.0/8, fd00::/8`); a bare address is
    /// that one host. An empty list trusts nobody.
    pub fn parse(v: &str) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "{item:?} is not a network: expected comma-separated CIDRs like \
                         10.0.0.0/8 or fd00::/8"
                    )
                })?;
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether `peer` is inside one of the networks.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|n| n.contains(&peer))
    }

    /// The networks, comma-separated.
    pub fn list(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The TCP peer's address, when the server recorded it.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<IpAddr>);

impl Peer {
    /// The peer recorded in a request's extensions.
    pub fn of(extensions: &Extensions) -> Peer {
        Peer(
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_canonical()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer::of(&parts.extensions))
    }
}

/// The right-most value of a comma-separated header: what the nearest proxy wrote.
fn last_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let all: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    all.join(",")
        .rsplit(',')
        .map(str::trim)
        .find(|v| !v.is_empty())
        .map(str::to_string)
}

impl ConsoleSettings {
    fn trusts(&self, peer: Peer) -> bool {
        peer.0.is_some_and(|p| self.trusted_proxies.contains(p))
    }

    /// `https` or `http`: the scheme the browser used.
    fn scheme(&self, peer: Peer, headers: &HeaderMap) -> &'static str {
        if let Some(p) = &self.public_url {
            return if p.is_https() { "https" } else { "http" };
        }
        let forwarded = self
            .trusts(peer)
            .then(|| last_value(headers, FORWARDED_PROTO))
            .flatten()
            .map(|v| v.to_ascii_lowercase());
        match forwarded.as_deref() {
            Some("https") => "https",
            Some("http") => "http",
            _ if self.https_listener => "https",
            _ => "http",
        }
    }

    /// The origin a browser on this console sends: `public_url`, else the scheme and host
    /// the request arrived with (a trusted proxy's forwarded ones when it sent them).
    /// `None` when the request names no host.
    pub fn expected_origin(&self, peer: Peer, headers: &HeaderMap) -> Option<String> {
        if let Some(p) = &self.public_url {
            return Some(p.origin().to_string());
        }
        let forwarded = self
            .trusts(peer)
            .then(|| last_value(headers, FORWARDED_HOST))
            .flatten();
        let host = match forwarded {
            Some(h) => h,
            None => headers.get(header::HOST)?.to_str().ok()?.to_string(),
        };
        Some(format!("{}://{host}", self.scheme(peer, headers)))
    }

    /// Whether the browser reached the console over HTTPS (the session cookie is then
    /// `Secure`).
    pub fn secure(&self, peer: Peer, headers: &HeaderMap) -> bool {
        self.scheme(peer, headers) == "https"
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the right-most
    /// `X-Forwarded-For` address that is not itself a trusted proxy.
    pub fn client(&self, peer: Peer, headers: &HeaderMap) -> Option<IpAddr> {
        let mut client = peer.0?;
        if !self.trusted_proxies.contains(client) {
            return Some(client);
        }
        let all: Vec<&str> = headers
            .get_all(FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let joined = all.join(",");
        for hop in joined.rsplit(',').map(str::trim) {
            let Some(addr) = parse_hop(hop) else { break };
            client = addr;
            if !self.trusted_proxies.contains(addr) {
                break;
            }
        }
        Some(client)
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|a| a.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn settings(public_url: Option<&str>, trusted: &str) -> ConsoleSettings {
        ConsoleSettings {
            public_url: public_url.map(|u| PublicUrl::parse(u).unwrap()),
            session_ttl: Duration::from_secs(60),
            trusted_proxies: TrustedProxies::parse(trusted).unwrap(),
            https_listener: false,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn peer(ip: &str) -> Peer {
        Peer(Some(ip.parse().unwrap()))
    }

    #[test]
    fn a_public_url_is_an_origin_without_path_or_credentials() {
        let u = PublicUrl::parse("https://Drover.Example.com:443/").unwrap();
        assert_eq!(u.origin(), "https://drover.example.com");
        assert!(u.is_https());
        let u = PublicUrl::parse("http://10.0.0.5:8080").unwrap();
        assert_eq!(u.origin(), "http://10.0.0.5:8080");
        assert!(!u.is_https());
        for bad in [
            "drover.example.com",
            "/ui/",
            "ftp://drover.example.com",
            "https://drover.example.com/drover",
            "https://drover.example.com/?a=1",
            "https://drover.example.com/#top",
            "https://admin:pw@drover.example.com",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_are_cidrs_or_single_addresses() {
        let t = TrustedProxies::parse(" 10.0.0.0/8, 192.168.1.7 ,fd00::/8,").unwrap();
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(t.contains("192.168.1.7".parse().unwrap()));
        assert!(!t.contains("192.168.1.8".parse().unwrap()));
        assert!(t.contains("fd00::1".parse().unwrap()));
        assert!(t.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies::default()
        );
        for bad in ["10.0.0.0/33", "10.0.0", "localhost", "10.0.0.0/8;"] {
            let e = TrustedProxies::parse(bad).unwrap_err();
            assert!(e.contains("is not a network"), "{bad}: {e}");
        }
    }

    #[test]
    fn public_url_is_the_one_origin_whatever_the_headers_say() {
        let s = settings(Some("https://drover.example.com"), "");
        let h = headers(&[("host", "127.0.0.1:8080"), ("x-forwarded-host", "evil")]);
        assert_eq!(
            s.expected_origin(peer("127.0.0.1"), &h).as_deref(),
            Some("https://drover.example.com")
        );
        assert!(s.secure(peer("127.0.0.1"), &h));
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_peer() {
        let s = settings(None, "10.0.0.0/8");
        let h = headers(&[
            ("host", "drover:8080"),
            ("x-forwarded-proto", "http, https"),
            ("x-forwarded-host", "drover.example.com"),
            ("x-forwarded-for", "198.51.100.9, 203.0.113.7, 10.0.0.3"),
        ]);

        assert_eq!(
            s.expected_origin(peer("10.0.0.2"), &h).as_deref(),
            Some("https://drover.example.com")
        );
        assert!(s.secure(peer("10.0.0.2"), &h));
        assert_eq!(
            s.client(peer("10.0.0.2"), &h),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            s.expected_origin(peer("192.0.2.1"), &h).as_deref(),
            Some("http://drover:8080")
        );
        assert!(!s.secure(peer("192.0.2.1"), &h));
        assert_eq!(
            s.client(peer("192.0.2.1"), &h),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            s.expected_origin(Peer(None), &h).as_deref(),
            Some("http://drover:8080")
        );
    }

    #[test]
    fn an_https_listener_is_https_unless_a_trusted_proxy_says_otherwise() {
        let mut s = settings(None, "127.0.0.1");
        s.https_listener = true;
        let h = headers(&[("host", "localhost:8443")]);
        assert_eq!(
            s.expected_origin(peer("192.0.2.1"), &h).as_deref(),
            Some("https://localhost:8443")
        );
        let h = headers(&[("host", "localhost:8443"), ("x-forwarded-proto", "http")]);
        assert!(!s.secure(peer("127.0.0.1"), &h));
        assert!(s.secure(peer("192.0.2.1"), &h));
    }
}
