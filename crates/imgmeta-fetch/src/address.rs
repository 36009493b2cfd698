//! The address policy as a pure function: is this IP address globally routable, and if not, why.
//!
//! Kept free of I/O so every blocked range can be tested exhaustively without sending a packet.
//! The ranges are written out by hand (rather than using `IpAddr::is_global`, which is still
//! unstable) so that each refusal can name the exact range it fell into.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of non-global address a destination turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// `0.0.0.0/8` and `::`: "this host"; connecting to it reaches the local machine.
    Unspecified,
    Loopback,
    /// RFC 1918 private space and IPv6 unique-local addresses.
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT.
    SharedAddressSpace,
    /// Link-local, which includes cloud metadata services at 169.254.169.254.
    LinkLocal,
    /// IPv6 site-local (deprecated, but still routed inside some networks).
    SiteLocal,
    Documentation,
    Benchmarking,
    /// `192.0.0.0/24`, IETF protocol assignments.
    ProtocolAssignment,
    Multicast,
    Broadcast,
    /// Reserved for future use or deprecated, never a public web server.
    Reserved,
    /// A translation or tunnelling prefix (NAT64, 6to4, Teredo) that can smuggle an arbitrary
    /// IPv4 destination, including private ones.
    Tunnel,
    /// `100::/64`, discard-only.
    Discard,
}

impl BlockKind {
    fn describe(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified (\"this host\")",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared address space (carrier-grade NAT)",
            Self::LinkLocal => "link-local",
            Self::SiteLocal => "site-local",
            Self::Documentation => "reserved for documentation",
            Self::Benchmarking => "reserved for benchmarking",
            Self::ProtocolAssignment => "reserved for IETF protocol assignments",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
            Self::Tunnel => "a tunnelling or translation prefix",
            Self::Discard => "discard-only",
        }
    }

    /// Whether `allow_private` (local development and tests) lifts this refusal. Only loopback
    /// and private-use space: link-local stays blocked because it holds cloud metadata services,
    /// and the rest are never a development server.
    pub fn relaxed_by_allow_private(self) -> bool {
        matches!(self, Self::Loopback | Self::Private)
    }
}

/// Why an address is refused: its kind and the range (CIDR) it fell into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockReason {
    pub kind: BlockKind,
    pub range: &'static str,
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "is {} ({})", self.kind.describe(), self.range)
    }
}

/// Decides whether `ip` is a globally routable address a fetch may connect to.
///
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are judged by the IPv4 address they embed.
pub fn check_ip(ip: IpAddr) -> Result<(), BlockReason> {
    match ip {
        IpAddr::V4(v4) => check_ipv4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => check_ipv4(v4),
            None => check_ipv6(v6),
        },
    }
}

const IPV4_BLOCKED: &[(u32, u8, BlockKind, &str)] = &[
    (0xFFFF_FFFF, 32, BlockKind::Broadcast, "255.255.255.255/32"),
    (0x0000_0000, 8, BlockKind::Unspecified, "0.0.0.0/8"),
    (0x0A00_0000, 8, BlockKind::Private, "10.0.0.0/8"),
    (
        0x6440_0000,
        10,
        BlockKind::SharedAddressSpace,
        "100.64.0.0/10",
    ),
    (0x7F00_0000, 8, BlockKind::Loopback, "127.0.0.0/8"),
    (0xA9FE_0000, 16, BlockKind::LinkLocal, "169.254.0.0/16"),
    (0xAC10_0000, 12, BlockKind::Private, "172.16.0.0/12"),
    (
        0xC000_0000,
        24,
        BlockKind::ProtocolAssignment,
        "192.0.0.0/24",
    ),
    (0xC000_0200, 24, BlockKind::Documentation, "192.0.2.0/24"),
    (0xC0A8_0000, 16, BlockKind::Private, "192.168.0.0/16"),
    (0xC612_0000, 15, BlockKind::Benchmarking, "198.18.0.0/15"),
    (0xC633_6400, 24, BlockKind::Documentation, "198.51.100.0/24"),
    (0xCB00_7100, 24, BlockKind::Documentation, "203.0.113.0/24"),
    (0xE000_0000, 4, BlockKind::Multicast, "224.0.0.0/4"),
    (0xF000_0000, 4, BlockKind::Reserved, "240.0.0.0/4"),
];

fn check_ipv4(ip: Ipv4Addr) -> Result<(), BlockReason> {
    let bits = u32::from(ip);
    for &(net, len, kind, range) in IPV4_BLOCKED {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        if bits & mask == net {
            return Err(BlockReason { kind, range });
        }
    }
    Ok(())
}

/// Specific IPv6 ranges, most specific first, so a refusal names the narrowest match.
const IPV6_BLOCKED: &[(u128, u8, BlockKind, &str)] = &[
    (0, 128, BlockKind::Unspecified, "::/128"),
    (1, 128, BlockKind::Loopback, "::1/128"),
    // IPv4-compatible addresses (deprecated): `::a.b.c.d` must not reach an IPv4 host.
    (0, 96, BlockKind::Reserved, "::/96"),
    (
        0x0064_FF9B_0000_0000_0000_0000_0000_0000,
        96,
        BlockKind::Tunnel,
        "64:ff9b::/96",
    ),
    (
        0x0064_FF9B_0001_0000_0000_0000_0000_0000,
        48,
        BlockKind::Tunnel,
        "64:ff9b:1::/48",
    ),
    (
        0x0100_0000_0000_0000_0000_0000_0000_0000,
        64,
        BlockKind::Discard,
        "100::/64",
    ),
    (
        0x2001_0DB8_0000_0000_0000_0000_0000_0000,
        32,
        BlockKind::Documentation,
        "2001:db8::/32",
    ),
    (
        0x2001_0000_0000_0000_0000_0000_0000_0000,
        32,
        BlockKind::Tunnel,
        "2001::/32",
    ),
    (
        0x2001_0002_0000_0000_0000_0000_0000_0000,
        48,
        BlockKind::Benchmarking,
        "2001:2::/48",
    ),
    (
        0x2001_0010_0000_0000_0000_0000_0000_0000,
        28,
        BlockKind::Reserved,
        "2001:10::/28",
    ),
    (
        0x2001_0020_0000_0000_0000_0000_0000_0000,
        28,
        BlockKind::Reserved,
        "2001:20::/28",
    ),
    (
        0x2002_0000_0000_0000_0000_0000_0000_0000,
        16,
        BlockKind::Tunnel,
        "2002::/16",
    ),
    (
        0x3FFF_0000_0000_0000_0000_0000_0000_0000,
        20,
        BlockKind::Documentation,
        "3fff::/20",
    ),
    (
        0xFC00_0000_0000_0000_0000_0000_0000_0000,
        7,
        BlockKind::Private,
        "fc00::/7",
    ),
    (
        0xFE80_0000_0000_0000_0000_0000_0000_0000,
        10,
        BlockKind::LinkLocal,
        "fe80::/10",
    ),
    (
        0xFEC0_0000_0000_0000_0000_0000_0000_0000,
        10,
        BlockKind::SiteLocal,
        "fec0::/10",
    ),
    (
        0xFF00_0000_0000_0000_0000_0000_0000_0000,
        8,
        BlockKind::Multicast,
        "ff00::/8",
    ),
];

fn check_ipv6(ip: Ipv6Addr) -> Result<(), BlockReason> {
    let bits = u128::from(ip);
    for &(net, len, kind, range) in IPV6_BLOCKED {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        if bits & mask == net {
            return Err(BlockReason { kind, range });
        }
    }
    // Only 2000::/3 is allocated as global unicast; anything else is reserved space that no
    // public web server lives in, so refusing it closes ranges we did not think to list.
    if bits >> 125 != 0b001 {
        return Err(BlockReason {
            kind: BlockKind::Reserved,
            range: "outside global unicast 2000::/3",
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "address_tests.rs"]
mod tests;
