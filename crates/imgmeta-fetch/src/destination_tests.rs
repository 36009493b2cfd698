//! Tests for the URL and address rules, as pure functions (IP literals only: no DNS, no traffic).

use super::*;
use crate::{DomainList, DomainPolicy};
use imgmeta_domain::ErrorCode;

fn url(raw: &str) -> Url {
    Url::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
}

fn code(cfg: &FetchConfig, raw: &str) -> Option<ErrorCode> {
    check_url(cfg, &url(raw)).err().map(|e| e.code())
}

fn strict() -> FetchConfig {
    FetchConfig::default()
}

#[test]
fn ip_literal_hosts_in_every_spelling_are_checked_without_dns() {
    for raw in [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[64:ff9b::a00:1]/",
        "https://192.168.1.1/",
        "https://100.64.0.1/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
    ] {
        assert_eq!(
            code(&strict(), raw),
            Some(ErrorCode::BlockedDestination),
            "{raw}"
        );
    }
}

#[test]
fn public_ip_literals_on_allowed_ports_pass() {
    for raw in [
        "http://8.8.8.8/",
        "https://1.1.1.1/a.png",
        "http://[2606:4700::1111]/",
        "http://[::ffff:8.8.8.8]:80/",
    ] {
        assert_eq!(code(&strict(), raw), None, "{raw}");
    }
}

#[test]
fn ports_other_than_80_and_443_are_refused_unless_configured() {
    assert_eq!(
        code(&strict(), "http://8.8.8.8:8080/"),
        Some(ErrorCode::BlockedDestination)
    );
    assert_eq!(
        code(&strict(), "https://8.8.8.8:22/"),
        Some(ErrorCode::BlockedDestination)
    );
    let cfg = FetchConfig {
        allowed_ports: vec![80, 443, 8080],
        ..strict()
    };
    assert_eq!(code(&cfg, "http://8.8.8.8:8080/"), None);
}

#[test]
fn other_schemes_and_credentials_are_refused_as_blocked_destinations() {
    for raw in [
        "file:///etc/passwd",
        "ftp://8.8.8.8/a.png",
        "gopher://8.8.8.8:70/",
        "data:image/png;base64,AAAA",
        "http://user:secret@8.8.8.8/",
        "http://user@8.8.8.8/",
    ] {
        assert_eq!(
            code(&strict(), raw),
            Some(ErrorCode::BlockedDestination),
            "{raw}"
        );
    }
}

#[test]
fn credentials_never_appear_in_the_refusal_message() {
    let err = check_url(&strict(), &url("http://admin:hunter2@8.8.8.8/")).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!err.to_string().contains("admin"), "{err}");
}

#[test]
fn refusal_messages_name_the_address_and_its_range() {
    let err = check_url(&strict(), &url("http://10.0.0.1/")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "destination 10.0.0.1 is refused: address 10.0.0.1 is private (10.0.0.0/8)"
    );
}

#[test]
fn allow_private_admits_loopback_and_private_space_on_any_port_but_not_metadata() {
    let cfg = FetchConfig {
        allow_private: true,
        ..strict()
    };
    assert_eq!(code(&cfg, "http://127.0.0.1:8000/"), None);
    assert_eq!(code(&cfg, "http://[::1]:1234/"), None);
    assert_eq!(code(&cfg, "http://192.168.0.10:8080/"), None);
    assert_eq!(
        code(&cfg, "http://169.254.169.254/"),
        Some(ErrorCode::BlockedDestination)
    );
    assert_eq!(
        code(&cfg, "http://0.0.0.0:8000/"),
        Some(ErrorCode::BlockedDestination)
    );
    assert_eq!(
        code(&cfg, "http://8.8.8.8:8000/"),
        Some(ErrorCode::BlockedDestination)
    );
    assert_eq!(
        code(&cfg, "ftp://127.0.0.1/"),
        Some(ErrorCode::BlockedDestination)
    );
    assert_eq!(
        code(&cfg, "http://u:p@127.0.0.1/"),
        Some(ErrorCode::BlockedDestination)
    );
}

#[test]
fn an_allowed_endpoint_admits_exactly_that_address_and_port() {
    let cfg = FetchConfig {
        allowed_endpoints: vec!["127.0.0.1:4000".parse().unwrap()],
        ..strict()
    };
    assert_eq!(code(&cfg, "http://127.0.0.1:4000/"), None);
    assert_eq!(code(&cfg, "http://[::ffff:127.0.0.1]:4000/"), None);
    assert_eq!(
        code(&cfg, "http://127.0.0.1:4001/"),
        Some(ErrorCode::BlockedDestination)
    );
    assert_eq!(
        code(&cfg, "http://127.0.0.2:4000/"),
        Some(ErrorCode::BlockedDestination)
    );
}

#[test]
fn the_domain_policy_applies_to_every_url_before_any_lookup() {
    let cfg = FetchConfig {
        domains: DomainPolicy::new(DomainList::parse("blocked.example").unwrap(), None),
        ..strict()
    };
    assert_eq!(
        code(&cfg, "http://img.blocked.example/a.png"),
        Some(ErrorCode::BlockedDomain)
    );
    assert_eq!(code(&cfg, "http://fine.example/a.png"), None);
}
