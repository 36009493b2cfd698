//! Tests for domain list parsing and matching.

use super::*;
use imgmeta_domain::ErrorCode;

fn policy_of(blocked: &str, allowed: Option<&str>) -> DomainPolicy {
    DomainPolicy::parse(blocked, allowed).unwrap()
}

#[test]
fn an_entry_blocks_itself_and_its_subdomains_but_not_lookalikes() {
    let policy = policy_of("example.com", None);
    assert!(policy.check("example.com").is_err());
    assert!(policy.check("img.example.com").is_err());
    assert!(policy.check("a.b.example.com").is_err());
    assert_eq!(policy.check("notexample.com"), Ok(()));
    assert_eq!(policy.check("example.com.evil.net"), Ok(()));
    assert_eq!(policy.check("example.org"), Ok(()));
}

#[test]
fn matching_ignores_case_and_trailing_dots_on_both_sides() {
    let policy = policy_of("Example.COM.", None);
    for host in [
        "example.com",
        "EXAMPLE.com",
        "example.com.",
        "Img.Example.Com.",
    ] {
        let refusal = policy.check(host).unwrap_err();
        assert_eq!(refusal.code(), ErrorCode::BlockedDomain, "{host}");
    }
}

#[test]
fn internationalised_names_match_their_punycode_form() {
    let policy = policy_of("bücher.example", None);
    assert!(policy.check("xn--bcher-kva.example").is_err());
    assert!(policy.check("BÜCHER.example").is_err());
    let punycode_policy = policy_of("xn--bcher-kva.example", None);
    assert!(punycode_policy.check("bücher.example").is_err());
}

#[test]
fn lists_accept_lines_commas_comments_and_wildcard_prefixes() {
    let list = DomainList::parse(
        "# internal hosts\n\
         corp.example, intranet.example  # both\n\
         \n\
         *.cdn.example\n\
         .tracker.example\n\
         corp.example\n",
    )
    .unwrap();
    assert_eq!(
        list,
        DomainList(vec![
            "corp.example".into(),
            "intranet.example".into(),
            "cdn.example".into(),
            "tracker.example".into(),
        ])
    );
}

#[test]
fn entries_that_are_not_domains_are_rejected_with_their_position() {
    for (text, index) in [
        ("ok.example\nhttp://bad.example/", 2),
        ("bad example", 1),
        ("a.example, b.example:443", 2),
        ("..", 1),
    ] {
        let err = DomainList::parse(text).unwrap_err();
        assert_eq!(err.index, index, "{text:?}");
    }
}

#[test]
fn an_allowlist_admits_only_its_domains_and_the_blocklist_still_wins() {
    let policy = policy_of(
        "private.images.example",
        Some("images.example, cdn.example"),
    );
    assert_eq!(policy.check("images.example"), Ok(()));
    assert_eq!(policy.check("eu.cdn.example"), Ok(()));
    assert!(matches!(
        policy.check("other.example"),
        Err(DomainRefusal::NotAllowed { .. })
    ));
    assert!(matches!(
        policy.check("private.images.example"),
        Err(DomainRefusal::Blocked { .. })
    ));
}

#[test]
fn an_empty_allowlist_allows_nothing_while_no_allowlist_allows_everything() {
    assert!(policy_of("", Some("")).check("example.com").is_err());
    assert_eq!(policy_of("", None).check("example.com"), Ok(()));
    assert_eq!(DomainPolicy::allow_all().check("anything.example"), Ok(()));
}

#[test]
fn ip_literal_entries_match_every_spelling_of_the_address() {
    let policy = policy_of("127.0.0.1, [::1]", None);
    assert!(policy.check("127.0.0.1").is_err());
    assert!(policy.check("127.1").is_err());
    assert!(policy.check("[0::1]").is_err());
    assert_eq!(policy.check("127.0.0.2"), Ok(()));
}

#[test]
fn refusals_say_which_entry_matched() {
    let refusal = policy_of("example.com", None)
        .check("img.example.com")
        .unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "host img.example.com is blocked by the domain blocklist (entry example.com)"
    );
}

#[test]
fn a_bad_entry_in_either_list_fails_the_whole_policy() {
    assert_eq!(
        DomainPolicy::parse("ok.example, bad/entry", None)
            .unwrap_err()
            .index,
        2
    );
    assert_eq!(
        DomainPolicy::parse("ok.example", Some("a b"))
            .unwrap_err()
            .index,
        1
    );
}
