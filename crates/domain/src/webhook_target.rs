//! Where a webhook may deliver. Deliveries are POSTs the service makes on an operator's behalf, so
//! a webhook URL must not turn the service into a probe of its own network: loopback, private
//! (RFC 1918, CGNAT, ULA), link-local (cloud metadata at 169.254.169.254), multicast, unspecified,
//! broadcast, reserved and documentation addresses are refused unless an operator allows them
//! explicitly ([`AllowList`]). The rule is checked on every address a connection would use: on a
//! literal IP host when the webhook is written, and on the resolved addresses at connect time
//! (a hostname may resolve elsewhere by then: DNS rebinding).
//!
//! IPv6 forms that carry an IPv4 address (`::ffff:a.b.c.d`, `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`)
//! are judged by that IPv4 address. The odd IPv4 spellings (`127.1`, `0x7f000001`, `2130706433`)
//! need no rule of their own: parsing an `http(s)` URL normalises them to dotted quads.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use url::Url;

mod cidr;

pub use cidr::{AllowList, Cidr, CidrError};

/// Longest webhook URL.
pub const MAX_URL_LEN: usize = 2048;

/// Why an address is refused as a webhook target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, and the deprecated site-local fec0::/10.
    Private,
    /// 100.64.0.0/10 (carrier-grade NAT).
    SharedAddressSpace,
    /// 169.254.0.0/16 (cloud metadata services live here), fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 0.0.0.0/8 ("this network", which Linux connects to the local host), ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32.
    Documentation,
    /// 192.0.0.0/24 (protocol assignments), 198.18.0.0/15 (benchmarking), 240.0.0.0/4.
    Reserved,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Loopback => "loopback",
            Refusal::Private => "private",
            Refusal::SharedAddressSpace => "shared (carrier-grade NAT)",
            Refusal::LinkLocal => "link-local",
            Refusal::UniqueLocal => "unique local",
            Refusal::Multicast => "multicast",
            Refusal::Unspecified => "unspecified",
            Refusal::Broadcast => "broadcast",
            Refusal::Documentation => "documentation",
            Refusal::Reserved => "reserved",
        })
    }
}

/// The address a connection to `ip` really reaches: the IPv4 address inside an IPv4-mapped,
/// IPv4-compatible or NAT64 IPv6 address, `ip` itself otherwise.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    // IPv4-compatible (::a.b.c.d, deprecated) except :: and ::1, which are IPv6's own.
    if s[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback() {
        return IpAddr::V4(embedded_v4(v6));
    }
    // The NAT64 well-known prefix: a gateway translates it to the embedded IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(embedded_v4(v6));
    }
    ip
}

fn embedded_v4(v6: Ipv6Addr) -> Ipv4Addr {
    let o = v6.octets();
    Ipv4Addr::new(o[12], o[13], o[14], o[15])
}

/// Why `ip` is no public unicast address, if it is not (after [`canonical`]).
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => Refusal::Unspecified,
        (127, _, _) => Refusal::Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Refusal::Private,
        (100, 64..=127, _) => Refusal::SharedAddressSpace,
        (169, 254, _) => Refusal::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Refusal::Documentation,
        (192, 0, 0) | (198, 18..=19, _) => Refusal::Reserved,
        (224..=239, _, _) => Refusal::Multicast,
        _ if ip.is_broadcast() => Refusal::Broadcast,
        (240..=255, _, _) => Refusal::Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let s = ip.segments();
    Some(match s[0] {
        _ if ip.is_unspecified() => Refusal::Unspecified,
        _ if ip.is_loopback() => Refusal::Loopback,
        0xfe80..=0xfebf => Refusal::LinkLocal,
        0xfec0..=0xfeff => Refusal::Private,
        0xfc00..=0xfdff => Refusal::UniqueLocal,
        0xff00..=0xffff => Refusal::Multicast,
        0x2001 if s[1] == 0x0db8 => Refusal::Documentation,
        _ => return None,
    })
}

/// Whether a webhook may connect to `ip`: public addresses always, refused ones only when the
/// operator's allow-list holds them.
pub fn check(ip: IpAddr, allow: &AllowList) -> Result<(), Refusal> {
    match classify(ip) {
        Some(refusal) if !allow.contains(ip) => Err(refusal),
        _ => Ok(()),
    }
}

/// Why a webhook URL is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not an `http://` or `https://` URL with a host, or too long.
    #[error("must be an http:// or https:// URL with a host, at most 2,048 characters")]
    Malformed,
    /// Its host is an IP address the service does not deliver to.
    #[error("{ip} is a {refusal} address: webhooks are not delivered to internal addresses unless the operator allows them (--webhook-allow)")]
    Refused {
        /// The address (as the URL normalised it).
        ip: IpAddr,
        /// Why.
        refusal: Refusal,
    },
}

/// Parses a webhook URL: `http` or `https`, with a host, at most [`MAX_URL_LEN`]; a literal IP
/// host must pass [`check`]. A hostname passes here: it is judged when it is resolved.
pub fn parse(url: &str, allow: &AllowList) -> Result<Url, UrlError> {
    if url.len() > MAX_URL_LEN {
        return Err(UrlError::Malformed);
    }
    let parsed = Url::parse(url).map_err(|_| UrlError::Malformed)?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::Malformed);
    }
    if let Some(ip) = literal_ip(&parsed) {
        check(ip, allow).map_err(|refusal| UrlError::Refused { ip, refusal })?;
    }
    Ok(parsed)
}

/// The URL's host when it is an IP address (no resolution needed, nor done, to reach it).
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// `url` fit for a log line: without user name, password, query and fragment, which may carry
/// credentials. Text that does not parse is replaced whole.
pub fn redact(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else { return "<unparsable url>".to_owned() };
    // Both fail only for URLs that cannot have credentials (`cannot-be-a-base`).
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.set_query(None);
    parsed.set_fragment(None);
    parsed.into()
}

#[cfg(test)]
mod tests;
