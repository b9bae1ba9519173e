//! The operator's allow-list of internal webhook targets: CIDR blocks such as `10.0.0.0/8` or
//! `fd00::/8`, written comma-separated (`--webhook-allow 10.1.0.0/16,fd00::/8`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::canonical;

/// An address block: the addresses whose first `prefix` bits are those of `network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR block does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an address block like 10.0.0.0/8 or fd00::/8")]
pub struct CidrError(String);

impl Cidr {
    /// Whether `ip` (or the IPv4 address it carries, see [`canonical`]) is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => same_prefix(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => same_prefix(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn same_prefix(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (whole, rest) = (usize::from(prefix / 8), prefix % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `address/prefix`; a bare address is a block of one.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let network = canonical(addr.parse::<IpAddr>().map_err(|_| bad())?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The internal blocks an operator lets webhooks reach (empty by default: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Cidr>);

impl AllowList {
    /// A list of these blocks.
    pub fn new(blocks: Vec<Cidr>) -> Self {
        AllowList(blocks)
    }

    /// Whether a block of the list holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The blocks.
    pub fn blocks(&self) -> &[Cidr] {
        &self.0
    }
}

impl FromStr for AllowList {
    type Err = CidrError;

    /// Comma-separated blocks; empty text is the empty list.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(AllowList)
    }
}
