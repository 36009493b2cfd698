//! Table tests for the address policy: the first, a middle and the last address of every blocked
//! range, and globally routable neighbours that must pass. Pure function, no traffic.

use super::*;

fn ip(raw: &str) -> IpAddr {
    raw.parse().unwrap_or_else(|e| panic!("{raw}: {e}"))
}

/// (first, middle, last, expected range) for every range the security issue lists.
const BLOCKED: &[(&str, &str, &str, &str)] = &[
    ("0.0.0.0", "0.1.2.3", "0.255.255.255", "0.0.0.0/8"),
    ("10.0.0.0", "10.20.30.40", "10.255.255.255", "10.0.0.0/8"),
    (
        "100.64.0.0",
        "100.100.100.100",
        "100.127.255.255",
        "100.64.0.0/10",
    ),
    ("127.0.0.0", "127.0.0.1", "127.255.255.255", "127.0.0.0/8"),
    (
        "169.254.0.0",
        "169.254.169.254",
        "169.254.255.255",
        "169.254.0.0/16",
    ),
    (
        "172.16.0.0",
        "172.20.1.1",
        "172.31.255.255",
        "172.16.0.0/12",
    ),
    ("192.0.0.0", "192.0.0.170", "192.0.0.255", "192.0.0.0/24"),
    ("192.0.2.0", "192.0.2.128", "192.0.2.255", "192.0.2.0/24"),
    (
        "192.168.0.0",
        "192.168.1.1",
        "192.168.255.255",
        "192.168.0.0/16",
    ),
    (
        "198.18.0.0",
        "198.18.200.1",
        "198.19.255.255",
        "198.18.0.0/15",
    ),
    (
        "198.51.100.0",
        "198.51.100.7",
        "198.51.100.255",
        "198.51.100.0/24",
    ),
    (
        "203.0.113.0",
        "203.0.113.9",
        "203.0.113.255",
        "203.0.113.0/24",
    ),
    ("224.0.0.0", "232.1.2.3", "239.255.255.255", "224.0.0.0/4"),
    ("240.0.0.0", "250.1.2.3", "255.255.255.254", "240.0.0.0/4"),
    (
        "255.255.255.255",
        "255.255.255.255",
        "255.255.255.255",
        "255.255.255.255/32",
    ),
    ("::", "::", "::", "::/128"),
    ("::1", "::1", "::1", "::1/128"),
    (
        "::ffff:0.0.0.0",
        "::ffff:0.1.2.3",
        "::ffff:0.255.255.255",
        "0.0.0.0/8",
    ),
    (
        "::ffff:10.0.0.0",
        "::ffff:10.1.2.3",
        "::ffff:10.255.255.255",
        "10.0.0.0/8",
    ),
    (
        "::ffff:127.0.0.0",
        "::ffff:127.0.0.1",
        "::ffff:127.255.255.255",
        "127.0.0.0/8",
    ),
    (
        "::ffff:169.254.0.0",
        "::ffff:169.254.169.254",
        "::ffff:169.254.255.255",
        "169.254.0.0/16",
    ),
    (
        "::ffff:192.168.0.0",
        "::ffff:192.168.1.1",
        "::ffff:192.168.255.255",
        "192.168.0.0/16",
    ),
    (
        "64:ff9b::",
        "64:ff9b::7f00:1",
        "64:ff9b::ffff:ffff",
        "64:ff9b::/96",
    ),
    (
        "2002::",
        "2002:7f00:1::",
        "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "2002::/16",
    ),
    (
        "2001::",
        "2001:0:4136:e378::1",
        "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001::/32",
    ),
    (
        "fc00::",
        "fd12:3456::1",
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fc00::/7",
    ),
    (
        "fe80::",
        "fe80::1",
        "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe80::/10",
    ),
    (
        "fec0::",
        "fec0::1",
        "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fec0::/10",
    ),
    (
        "ff00::",
        "ff02::1",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "ff00::/8",
    ),
    (
        "2001:db8::",
        "2001:db8:1::1",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        "2001:db8::/32",
    ),
    ("100::", "100::1", "100::ffff:ffff:ffff:ffff", "100::/64"),
];

#[test]
fn every_address_of_every_blocked_range_is_refused_with_its_range() {
    for &(first, middle, last, range) in BLOCKED {
        for raw in [first, middle, last] {
            let reason = check_ip(ip(raw)).expect_err(raw);
            assert_eq!(reason.range, range, "{raw}");
        }
    }
}

#[test]
fn globally_routable_addresses_pass() {
    for raw in [
        "8.8.8.8",
        "1.1.1.1",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.0",
        "192.0.3.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "198.51.99.255",
        "198.51.101.0",
        "203.0.112.255",
        "203.0.114.0",
        "223.255.255.255",
        "2606:4700::1111",
        "2a00:1450:4001:80b::200e",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "::ffff:1.1.1.1",
    ] {
        assert_eq!(check_ip(ip(raw)), Ok(()), "{raw}");
    }
}

#[test]
fn ipv6_outside_global_unicast_is_refused_even_when_not_listed() {
    for raw in [
        "::ffff:0:7f00:1",
        "::127.0.0.1",
        "::8.8.8.8",
        "4000::1",
        "64:ff9b:1::1",
        "e000::1",
    ] {
        assert!(check_ip(ip(raw)).is_err(), "{raw}");
    }
}

#[test]
fn refusals_name_the_kind_and_the_range() {
    let reason = check_ip(ip("10.0.0.1")).unwrap_err();
    assert_eq!(reason.to_string(), "is private (10.0.0.0/8)");
    let reason = check_ip(ip("169.254.169.254")).unwrap_err();
    assert_eq!(reason.kind, BlockKind::LinkLocal);
    assert!(!reason.kind.relaxed_by_allow_private());
}

#[test]
fn allow_private_relaxes_only_loopback_and_private_space() {
    let relaxed: Vec<&str> = BLOCKED
        .iter()
        .filter(|(first, ..)| {
            check_ip(ip(first))
                .unwrap_err()
                .kind
                .relaxed_by_allow_private()
        })
        .map(|(.., range)| *range)
        .collect();
    assert_eq!(
        relaxed,
        [
            "10.0.0.0/8",
            "127.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "::1/128",
            "10.0.0.0/8",
            "127.0.0.0/8",
            "192.168.0.0/16",
            "fc00::/7",
        ]
    );
}
